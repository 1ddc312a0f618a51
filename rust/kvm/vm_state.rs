// SPDX-License-Identifier: GPL-2.0

//! What kvm_rtdp keeps per VM, in `kvm->arch.tdp_mmu_provider_data`.
//!
//! # Invariants
//!
//! A VM bound to kvm_rtdp has exactly one [`VmState`] from the moment its
//! `init` entry stored it until its `uninit` entry takes it back; kvm.ko
//! calls no other entry outside that span. Only `crate::entries` stores or
//! takes it: [`super::NewVm::bind`], from the only handle `init` has, and
//! the `unsafe` [`Kvm::unbind`].

use kernel::bindings;
use kernel::cpu::CpuId;
use kernel::prelude::*;
use kernel::sync::Arc;

use super::{ExternalTable, Kvm, Reclaimer, VmDebugfs};
use crate::invalidations::Invalidations;
use crate::spte::Masks;
use crate::stats::{Counter, Stats};

/// Per-VM state.
pub(crate) struct VmState {
    /// Event counts of the VM's MMU.
    pub(crate) stats: Arc<Stats>,
    /// MMU notifier invalidations in progress (`crate::retry`).
    pub(crate) invalidations: Invalidations,
    /// Removed page tables waiting for a grace period (`crate::reclaim`).
    pub(crate) reclaim: Arc<Reclaimer>,
    /// The mode-dependent SPTE bits, constant while the vendor module that
    /// set them (and so the VM) lives.
    pub(crate) masks: Masks,
    /// The VM's external page table, if its private leaves are mirrored
    /// (`crate::mirror`); released with the state, after the teardown.
    pub(crate) external: Option<ExternalTable>,
    /// The VM's debugfs directory, removed with the state.
    pub(crate) _debugfs: Option<VmDebugfs>,
}

impl VmState {
    /// Count one event, in the shard of the current CPU.
    #[inline]
    pub(crate) fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Count `n` events at once: one atomic add for a batch.
    #[inline]
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.stats
            .add_in(CpuId::current().as_u32() as usize, counter, n);
    }
}

/// Where kvm.ko keeps a provider's per-VM data for `kvm`.
pub(super) fn state_slot(kvm: *mut bindings::kvm) -> *mut *mut core::ffi::c_void {
    // SAFETY: only a field address of a valid VM is computed (the callers
    // hold one).
    unsafe { &raw mut (*kvm).arch.tdp_mmu_provider_data }
}

impl Kvm {
    /// Take the VM's state back: the VM is no longer bound.
    ///
    /// # Safety
    ///
    /// Called from the `uninit` entry, after every other entry of the VM
    /// has returned, and only once; nothing borrowed from [`Kvm::state`]
    /// is live, and `self` (like every other `&Kvm` of the VM) is not used
    /// after the call.
    pub(crate) unsafe fn unbind(&self) -> KBox<VmState> {
        // SAFETY: by the caller's guarantee nothing else uses the slot,
        // which holds the box `NewVm::bind` stored (`Kvm`'s invariant).
        unsafe {
            let state = core::ptr::replace(state_slot(self.raw()), core::ptr::null_mut());
            KBox::from_raw(state.cast())
        }
    }

    /// The VM's state.
    #[inline]
    pub(crate) fn state(&self) -> &VmState {
        // SAFETY: a `&Kvm` exists only while the state is stored (`Kvm`'s
        // invariant), and `&self` does not outlive it.
        unsafe { &*(*state_slot(self.raw())).cast::<VmState>() }
    }
}
