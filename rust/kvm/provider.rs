// SPDX-License-Identifier: GPL-2.0

//! kvm_rtdp as kvm.ko's TDP MMU provider: the registration of its
//! `struct kvm_tdp_mmu_ops`.

use kernel::{bindings, error::to_result, prelude::*};

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
    /// Register `ops` (`crate::entries::ops`) with kvm.ko. Fails with
    /// `EBUSY` when another provider is registered and `EINVAL` when kvm.ko's
    /// `struct kvm_tdp_mmu_ops` has another size; kvm.ko logs which, and on
    /// success how many of its entries and hooks `ops` serves (counted from
    /// the list in `asm/kvm-tdp-mmu-ops.h` that the struct is built from).
    pub(crate) fn new(ops: bindings::kvm_tdp_mmu_ops) -> Result<Self> {
        let ops = KBox::new(ops, GFP_KERNEL)?;
        // SAFETY: `ops` is a valid `struct kvm_tdp_mmu_ops` whose pointers
        // refer to 'static data; it stays allocated and unchanged until
        // `drop` unregisters it.
        to_result(unsafe { bindings::kvm_tdp_mmu_register_provider(&*ops) })?;
        // INVARIANT: registered just above; the box is never moved out of.
        Ok(Self { ops })
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
