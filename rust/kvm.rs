// SPDX-License-Identifier: GPL-2.0

//! The boundary with kvm.ko: every raw declaration and every `unsafe` call
//! into KVM lives here.
//!
//! kvm.ko (with patch 0002 of `patches/`) routes the TDP MMU entry points of
//! each VM bound to a provider through a `struct kvm_tdp_mmu_ops`
//! (`arch/x86/include/asm/kvm_tdp_mmu_provider.h`). Its layout is mirrored
//! here by hand until the Rust bindings for the KVM headers exist; kvm.ko
//! checks the size at registration, so a mismatch is refused, not run.

use core::ffi::{c_char, c_int, c_void, CStr};
use kernel::{error::to_result, prelude::*};

/// Entries of `struct kvm_tdp_mmu_ops` after `bind`: `init`, `uninit` and one
/// per `kvm_tdp_mmu_*()` entry point (`KVM_TDP_MMU_NR_ENTRIES`).
pub(crate) const TDP_MMU_ENTRIES: usize = 21;

/// An entry of `struct kvm_tdp_mmu_ops`; `None` lets kvm.ko run its built-in
/// implementation. Entries get their C signatures as Rust starts to serve
/// them; a function pointer has the same size and ABI whatever its signature.
type Entry = Option<unsafe extern "C" fn()>;

/// `struct kvm_tdp_mmu_ops`.
#[repr(C)]
struct TdpMmuOps {
    size: usize,
    /// `struct module *`, opaque here: kvm.ko only passes it to `try_module_get()`.
    owner: *mut c_void,
    name: *const c_char,
    bind: Option<unsafe extern "C" fn(kvm: *mut c_void) -> bool>,
    entries: [Entry; TDP_MMU_ENTRIES],
}

extern "C" {
    fn kvm_tdp_mmu_register_provider(ops: *const TdpMmuOps) -> c_int;
    fn kvm_tdp_mmu_unregister_provider(ops: *const TdpMmuOps);
}

/// Whether a VM being created is bound to this provider. Runs under kvm.ko's
/// provider mutex, in process context.
extern "C" fn bind(_kvm: *mut c_void) -> bool {
    crate::bind_new_vms()
}

/// kvm_rtdp registered as kvm.ko's TDP MMU provider; unregistered on drop.
///
/// # Invariants
///
/// `ops` is the `struct kvm_tdp_mmu_ops` that kvm.ko holds as the registered
/// provider; it neither moves nor changes until `drop` has unregistered it.
pub(crate) struct ProviderRegistration {
    ops: KBox<TdpMmuOps>,
}

// SAFETY: the ops table is immutable after registration, and kvm.ko reads it
// from any thread; the raw pointers in it refer to 'static data.
unsafe impl Send for ProviderRegistration {}
// SAFETY: as above, shared references only read immutable data.
unsafe impl Sync for ProviderRegistration {}

impl ProviderRegistration {
    /// Register with kvm.ko. Fails with `EBUSY` when another provider is
    /// registered and `EINVAL` when kvm.ko's `struct kvm_tdp_mmu_ops` has
    /// another size; kvm.ko logs which.
    pub(crate) fn new(module: &'static ThisModule, name: &'static CStr) -> Result<Self> {
        let ops = KBox::new(
            TdpMmuOps {
                size: core::mem::size_of::<TdpMmuOps>(),
                owner: module.as_ptr().cast(),
                name: name.as_ptr(),
                bind: Some(bind),
                entries: [None; TDP_MMU_ENTRIES],
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is a valid `struct kvm_tdp_mmu_ops` whose pointers
        // refer to 'static data; it stays allocated and unchanged until
        // `drop` unregisters it.
        to_result(unsafe { kvm_tdp_mmu_register_provider(&*ops) })?;
        // INVARIANT: registered just above; the box is never moved out of.
        Ok(Self { ops })
    }

    /// Number of entries served by Rust rather than kvm.ko's built-in code.
    pub(crate) fn served(&self) -> usize {
        self.ops.entries.iter().filter(|e| e.is_some()).count()
    }
}

impl Drop for ProviderRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ops` is registered. No VM is bound
        // to it: each bound VM holds a reference to this module, so the
        // module (and with it this registration) cannot be going away.
        unsafe { kvm_tdp_mmu_unregister_provider(&*self.ops) };
        // Nothing of ours may still be queued once the module is gone.
        kernel::sync::rcu::rcu_barrier();
    }
}
