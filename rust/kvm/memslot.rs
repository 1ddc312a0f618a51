// SPDX-License-Identifier: GPL-2.0

//! Memslots, `struct kvm_memory_slot`, and the gfn ranges of MMU notifiers
//! and memslot operations, `struct kvm_gfn_range`.

use kernel::bindings;

use super::{c_wrapper, Kvm};

c_wrapper!(
    /// A gfn range of an MMU notifier or a memslot operation.
    GfnRange,
    bindings::kvm_gfn_range
);
c_wrapper!(
    /// A memslot, `struct kvm_memory_slot`.
    Memslot,
    bindings::kvm_memory_slot
);

impl GfnRange {
    fn get(&self) -> &bindings::kvm_gfn_range {
        // SAFETY: kvm.ko passes a valid range for the duration of the call.
        unsafe { &*self.raw() }
    }

    pub(crate) fn start(&self) -> u64 {
        self.get().start
    }

    pub(crate) fn end(&self) -> u64 {
        self.get().end
    }

    /// Whether the range's invalidation is for shared mappings
    /// (`KVM_FILTER_SHARED`).
    pub(crate) fn for_shared(&self) -> bool {
        self.get().attr_filter & bindings::kvm_gfn_range_filter_KVM_FILTER_SHARED != 0
    }

    /// Whether the range's invalidation is for private mappings
    /// (`KVM_FILTER_PRIVATE`).
    pub(crate) fn for_private(&self) -> bool {
        self.get().attr_filter & bindings::kvm_gfn_range_filter_KVM_FILTER_PRIVATE != 0
    }

    pub(crate) fn may_block(&self) -> bool {
        self.get().may_block
    }

    /// The address space of the range's memslot.
    pub(crate) fn as_id(&self) -> i32 {
        // SAFETY: notifier ranges always carry their memslot.
        i32::from(unsafe { (*self.get().slot).as_id })
    }
}

impl Memslot {
    fn get(&self) -> &bindings::kvm_memory_slot {
        // SAFETY: kvm.ko passes a memslot that stays valid for the call.
        unsafe { &*self.raw() }
    }

    pub(crate) fn base_gfn(&self) -> u64 {
        self.get().base_gfn
    }

    /// The first gfn after the slot.
    pub(crate) fn end_gfn(&self) -> u64 {
        self.get().base_gfn + self.get().npages as u64
    }

    pub(crate) fn npages(&self) -> u64 {
        self.get().npages as u64
    }

    pub(crate) fn as_id(&self) -> i32 {
        i32::from(self.get().as_id)
    }

    /// Whether dirty logging is on (`kvm_slot_dirty_track_enabled()`).
    pub(crate) fn dirty_logging(&self) -> bool {
        self.get().flags & bindings::KVM_MEM_LOG_DIRTY_PAGES != 0
    }

    /// The largest level at which `gfn` of this slot may be mapped now
    /// (`kvm_mmu_max_mapping_level()`): host mapping size, disallowed
    /// huge pages, memory attributes.
    pub(crate) fn max_mapping_level(&self, kvm: &Kvm, gfn: u64) -> u8 {
        // SAFETY: a valid VM and memslot; no fault (NULL) asks for the
        // level the slot and the host allow.
        let level = unsafe {
            bindings::kvm_mmu_max_mapping_level(kvm.raw(), core::ptr::null_mut(), self.raw(), gfn)
        };
        level.clamp(0, u8::MAX.into()) as u8
    }
}
