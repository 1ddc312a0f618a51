// SPDX-License-Identifier: GPL-2.0

//! A VM's external page table, as kvm.ko hands it over (patch 0017): the
//! vendor's ops for TDX VMs, or the software stand-in a test module
//! registered for `KVM_X86_SW_PROTECTED_VM` VMs.

use core::ptr::NonNull;

use kernel::bindings;
use kernel::error::code::EBUSY;

use super::{NewVm, RemovedSp};
use crate::level::Level;
use crate::mirror::{External, Refusal};
use crate::spte::Spte;

/// The external page table of one VM, from its `init` entry to its
/// `uninit` entry.
///
/// # Invariants
///
/// `ops` was returned by `kvm_tdp_mmu_provider_get_external(kvm)` and is
/// released once, when this is dropped; until then the ops and the module
/// behind them stay loaded, and `kvm` is a VM that is not destroyed yet.
pub(crate) struct ExternalTable {
    kvm: NonNull<bindings::kvm>,
    ops: NonNull<bindings::kvm_tdp_mmu_external_ops>,
}

// SAFETY: the ops are callable from any task, with the VM's mmu_lock held
// as `External::set` is; the pointers are only read.
unsafe impl Send for ExternalTable {}
// SAFETY: as for `Send`; `set` takes `&self` and the ops serialize nothing
// on their own but what mmu_lock and the freeze serialize.
unsafe impl Sync for ExternalTable {}

impl ExternalTable {
    /// The external page table of `kvm`, if it has one; for the `init`
    /// entry (kvm.ko takes a reference to the table's module).
    pub(crate) fn of(kvm: &NewVm<'_>) -> Option<Self> {
        // SAFETY: a VM being initialized (`NewVm`'s invariant).
        let ops = unsafe { bindings::kvm_tdp_mmu_provider_get_external(kvm.raw()) };
        // INVARIANT: released in `drop`, which the VM's `uninit` entry runs
        // before kvm.ko frees the VM.
        Some(ExternalTable {
            ops: NonNull::new(ops.cast_mut())?,
            // SAFETY: a valid VM is not null.
            kvm: unsafe { NonNull::new_unchecked(kvm.raw()) },
        })
    }
}

impl External for ExternalTable {
    fn set(&self, gfn: u64, level: Level, old: Spte, new: Spte) -> Result<(), Refusal> {
        // SAFETY: the ops are alive (type invariant) and `set_spte` is
        // never NULL (kvm.ko checks at registration).
        let r = unsafe {
            let set = (*self.ops.as_ptr()).set_spte.unwrap_unchecked();
            set(self.kvm.as_ptr(), gfn, old.0, new.0, i32::from(level.get()))
        };
        match r {
            0 => Ok(()),
            r if r == EBUSY.to_errno() => Err(Refusal::Busy),
            r => Err(Refusal::Failed(r)),
        }
    }
}

impl ExternalTable {
    /// Free the external twin of `table`, a removed table of a mirror root
    /// whose entries were all set non-present (TDX's `free_external_spt`).
    pub(crate) fn free_spt(&self, table: &RemovedSp) {
        // SAFETY: the ops are alive (type invariant); `free_spt` may be
        // NULL; `table` is a removed page that nobody links (`RemovedSp`'s
        // invariant), not freed before the borrow ends.
        unsafe {
            if let Some(free) = (*self.ops.as_ptr()).free_spt {
                free(self.kvm.as_ptr(), table.sp().raw());
            }
        }
    }
}

impl Drop for ExternalTable {
    fn drop(&mut self) {
        // SAFETY: released once (type invariant), while the VM is alive.
        unsafe {
            bindings::kvm_tdp_mmu_provider_put_external(self.kvm.as_ptr(), self.ops.as_ptr())
        };
    }
}
