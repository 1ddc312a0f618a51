// SPDX-License-Identifier: GPL-2.0

//! kvm_rtdp as kvm.ko's TDP MMU provider: the registration of its
//! `struct kvm_tdp_mmu_ops`.

use kernel::{bindings, error::to_result, prelude::*};

/// Entries of `struct kvm_tdp_mmu_ops` after `bind` (`KVM_TDP_MMU_NR_ENTRIES`):
/// `init`, `uninit` and one per `kvm_tdp_mmu_*()` entry point.
pub(crate) const TDP_MMU_ENTRIES: usize = bindings::KVM_TDP_MMU_NR_ENTRIES as usize;
/// Hooks into the rest of KVM's MMU after the entries (`KVM_TDP_MMU_NR_HOOKS`).
pub(crate) const TDP_MMU_HOOKS: usize = bindings::KVM_TDP_MMU_NR_HOOKS as usize;

/// kvm_rtdp registered as kvm.ko's TDP MMU provider; unregistered on drop.
///
/// # Invariants
///
/// `ops` is the `struct kvm_tdp_mmu_ops` that kvm.ko holds as the registered
/// provider; it neither moves nor changes until `drop` has unregistered it.
pub(crate) struct ProviderRegistration {
    ops: KBox<bindings::kvm_tdp_mmu_ops>,
}

// SAFETY: the ops table is immutable after registration, and kvm.ko reads it
// from any thread; the raw pointers in it refer to 'static data.
unsafe impl Send for ProviderRegistration {}
// SAFETY: as above, shared references only read immutable data.
unsafe impl Sync for ProviderRegistration {}

impl ProviderRegistration {
    /// Register `ops` (`crate::entries::ops`) with kvm.ko. Fails with `EBUSY` when another provider is
    /// registered and `EINVAL` when kvm.ko's `struct kvm_tdp_mmu_ops` has
    /// another size; kvm.ko logs which.
    pub(crate) fn new(ops: bindings::kvm_tdp_mmu_ops) -> Result<Self> {
        let ops = KBox::new(ops, GFP_KERNEL)?;
        // SAFETY: `ops` is a valid `struct kvm_tdp_mmu_ops` whose pointers
        // refer to 'static data; it stays allocated and unchanged until
        // `drop` unregisters it.
        to_result(unsafe { bindings::kvm_tdp_mmu_register_provider(&*ops) })?;
        // INVARIANT: registered just above; the box is never moved out of.
        Ok(Self { ops })
    }

    /// Number of entries served by Rust rather than kvm.ko's built-in code.
    pub(crate) fn served(&self) -> usize {
        let o = &*self.ops;
        [
            o.init.is_some(),
            o.uninit.is_some(),
            o.alloc_root.is_some(),
            o.put_root.is_some(),
            o.zap_leafs.is_some(),
            o.zap_possible_nx_huge_page.is_some(),
            o.zap_all.is_some(),
            o.invalidate_roots.is_some(),
            o.zap_invalidated_roots.is_some(),
            o.map.is_some(),
            o.unmap_gfn_range.is_some(),
            o.age_gfn_range.is_some(),
            o.test_age_gfn.is_some(),
            o.wrprot_slot.is_some(),
            o.clear_dirty_slot.is_some(),
            o.clear_dirty_pt_masked.is_some(),
            o.recover_huge_pages.is_some(),
            o.write_protect_gfn.is_some(),
            o.try_split_huge_pages.is_some(),
            o.get_walk.is_some(),
            o.fast_pf_get_last_sptep.is_some(),
        ]
        .iter()
        .filter(|served| **served)
        .count()
    }

    /// Number of MMU hooks served by Rust.
    pub(crate) fn hooks_served(&self) -> usize {
        let o = &*self.ops;
        [
            o.invalidate_start.is_some(),
            o.invalidate_range_add.is_some(),
            o.invalidate_end.is_some(),
            o.invalidate_retry_gfn.is_some(),
            o.check_mmio_spte.is_some(),
        ]
        .iter()
        .filter(|served| **served)
        .count()
    }
}

impl Drop for ProviderRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ops` is registered. No VM is bound
        // to it: each bound VM holds a reference to this module, so the
        // module (and with it this registration) cannot be going away.
        unsafe { bindings::kvm_tdp_mmu_unregister_provider(&*self.ops) };
        // Page tables freed by `Sp::free_after_grace_period` run our
        // callback: wait for all of them before the module text goes away.
        kernel::sync::rcu::rcu_barrier();
    }
}
