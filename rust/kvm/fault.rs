// SPDX-License-Identifier: GPL-2.0

//! A page fault being handled, `struct kvm_page_fault`, and the result the
//! fault path returns to `kvm_mmu_do_page_fault()`.

use core::ffi::c_int;

use kernel::bindings;

use super::{c_wrapper, RootRole, Sp, Vcpu};
use crate::level::Level;
use crate::spte::Spte;

c_wrapper!(
    /// A page fault being handled, `struct kvm_page_fault`.
    Fault,
    bindings::kvm_page_fault
);

/// Result of [`crate::fault::map`], as `kvm_mmu_do_page_fault()` reads it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PfResult {
    Retry,
    Emulate,
    WriteProtected,
    Fixed,
    Spurious,
}

impl PfResult {
    pub(crate) fn to_c(self) -> c_int {
        (match self {
            PfResult::Retry => bindings::RET_PF_RETRY,
            PfResult::Emulate => bindings::RET_PF_EMULATE,
            PfResult::WriteProtected => bindings::RET_PF_WRITE_PROTECTED,
            PfResult::Fixed => bindings::RET_PF_FIXED,
            PfResult::Spurious => bindings::RET_PF_SPURIOUS,
        }) as c_int
    }
}

impl Fault {
    fn get(&self) -> &bindings::kvm_page_fault {
        // SAFETY: only the faulting vCPU's thread uses the fault; this
        // module changes it only through `hugepage_adjust`, which takes
        // `&self` and does not overlap with a live reference.
        unsafe { &*self.raw() }
    }

    pub(crate) fn gfn(&self) -> u64 {
        self.get().gfn
    }

    pub(crate) fn goal_level(&self) -> Level {
        Level::new(self.get().goal_level).unwrap_or(Level::PG_4K)
    }

    pub(crate) fn req_level(&self) -> Level {
        Level::new(self.get().req_level).unwrap_or(Level::PG_4K)
    }

    pub(crate) fn huge_page_disallowed(&self) -> bool {
        self.get().huge_page_disallowed
    }

    pub(crate) fn nx_huge_page_workaround_enabled(&self) -> bool {
        self.get().nx_huge_page_workaround_enabled
    }

    pub(crate) fn prefetch(&self) -> bool {
        self.get().prefetch
    }

    pub(crate) fn write(&self) -> bool {
        self.get().write
    }

    /// The faulting guest physical address, shared bit included.
    pub(crate) fn addr(&self) -> u64 {
        self.get().addr
    }

    /// Whether the access is to the VM's private memory (guest_memfd).
    pub(crate) fn is_private(&self) -> bool {
        self.get().is_private
    }

    /// Whether the gfn has no memslot: an MMIO access.
    pub(crate) fn is_mmio(&self) -> bool {
        self.get().slot.is_null()
    }

    /// Choose the largest mapping level the host and the guest allow.
    pub(crate) fn hugepage_adjust(&self, vcpu: &Vcpu) {
        // SAFETY: the faulting vCPU's own fault, no reference into it held.
        unsafe { bindings::kvm_mmu_hugepage_adjust(vcpu.raw(), self.raw()) };
    }

    /// Lower the goal level where an existing huge page was split for the
    /// NX huge page workaround.
    pub(crate) fn disallowed_hugepage_adjust(&self, spte: Spte, level: Level) {
        // SAFETY: as in `hugepage_adjust`.
        unsafe { bindings::disallowed_hugepage_adjust(self.raw(), spte.0, level.get().into()) };
    }

    /// The leaf SPTE for this fault at `gfn` in `sp`, replacing `old`; also
    /// whether the mapping had to be write-protected.
    pub(crate) fn make_spte(&self, vcpu: &Vcpu, sp: Sp<'_>, gfn: u64, old: Spte) -> (Spte, bool) {
        let f = self.get();
        let mut new = 0u64;
        // SAFETY: valid vCPU, page, memslot and fault; `new` is written.
        let wrprot = unsafe {
            bindings::make_spte(
                vcpu.raw(),
                sp.raw(),
                f.slot,
                RootRole::of(sp).access(),
                gfn,
                f.pfn,
                old.0,
                f.prefetch,
                false,
                f.map_writable,
                &mut new,
            )
        };
        (Spte(new), wrprot)
    }
}
