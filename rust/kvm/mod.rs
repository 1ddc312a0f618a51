// SPDX-License-Identifier: GPL-2.0

//! The boundary with kvm.ko: the safe types through which the rest of the
//! module sees the objects kvm.ko owns, one file per object.
//!
//! kvm.ko (with `patches/`) routes the TDP MMU entry points of each VM bound
//! to a provider through a `struct kvm_tdp_mmu_ops`
//! (`arch/x86/include/asm/kvm_tdp_mmu_provider.h`); `crate::entries` turns
//! their raw arguments into the types below. This module imports nothing
//! from the logic modules (only the pure `rust/core` ones and the kernel
//! crate); every `unsafe` block of kvm_rtdp is here or in `crate::entries`.
//!
//! # What keeps a handle valid
//!
//! A handle carries the lifetime of what keeps its object alive, so that
//! using it after that is gone does not compile:
//!
//! - a root lives while a reference to it is held: a [`RootRef`], put when
//!   it is dropped, or the vCPU's reference for [`Vcpu::root`], or the
//!   write lock ([`MmuWrite::for_each_root`]), under which no root is freed;
//! - a table reached through a root lives until the end of the RCU
//!   read-side section it was reached in: [`Table`], [`Sptep`] and [`Sp`]
//!   from a [`Walk`] borrow the walk, whose yields (which end the section)
//!   take it by `&mut`; those of an [`RcuWalk`] borrow the section;
//! - a table unlinked from the tree is a [`RemovedSp`], owned by the thread
//!   whose exchange unlinked it, and freed only after a grace period; a table
//!   never linked is a [`NewSp`], freed on drop unless it was published.
//!
//! # What proves a lock is held
//!
//! [`MmuRead`] and [`MmuWrite`] are `mmu_lock` held for read and for write:
//! functions that need one take it, so that calling a write-lock function
//! under the read lock does not compile. kvm.ko's callers hold the lock for
//! the entry points that run under it; `crate::entries` says so once per
//! entry with [`MmuRead::assume`] or [`MmuWrite::assume`], which lockdep
//! checks. [`PagesGuard`] is `tdp_mmu_pages_lock`, held.

mod debugfs;
pub(crate) mod direct_map;
mod external;
mod fault;
mod lock;
mod make_spte;
mod memslot;
mod provider;
mod rcu;
mod rcu_free;
mod root_list;
mod sp;
mod table;
pub(crate) mod trace;
mod vcpu;
mod vm;
mod vm_state;
mod walk;

pub(crate) use debugfs::{DebugfsRoot, VmDebugfs};
pub(crate) use external::ExternalTable;
pub(crate) use fault::{Fault, PfResult};
pub(crate) use lock::{MmuHeld, MmuLocked, MmuRead, MmuWrite, PagesGuard};
pub(crate) use make_spte::{make_huge_spte, make_small_spte, max_gfn_exclusive};
pub(crate) use memslot::{GfnRange, Memslot};
pub(crate) use provider::ProviderRegistration;
pub(crate) use rcu::CallerRcu;
pub(crate) use rcu_free::Reclaimer;
pub(crate) use root_list::{ListedRoot, RootRef, RootTypes, ScheduledZaps};
pub(crate) use sp::{NewSp, RemovedSp, Sp};
pub(crate) use table::{Replaced, Sptep, Table};
pub(crate) use vcpu::{RootRole, Vcpu};
pub(crate) use vm::{Kvm, NewVm, NoGuestEntry};
pub(crate) use vm_state::VmState;
pub(crate) use walk::{last_on_path, Cursor, RcuWalk, Walk};

/// `INVALID_PAGE`: no root.
const INVALID_PAGE: u64 = !0;

/// A transparent wrapper of a C structure that kvm.ko passes by pointer,
/// with `from_raw` (unsafe: the pointee must outlive the reference) and
/// `raw`.
macro_rules! c_wrapper {
    ($(#[$meta:meta])* $name:ident, $c:ty) => {
        $(#[$meta])*
        #[repr(transparent)]
        pub(crate) struct $name(kernel::types::Opaque<$c>);

        impl $name {
            /// # Safety
            ///
            /// `ptr` points to a valid object that outlives `'a`.
            pub(crate) unsafe fn from_raw<'a>(ptr: *mut $c) -> &'a Self {
                // SAFETY: a transparent wrapper, valid for `'a` by the
                // caller's guarantee.
                unsafe { &*ptr.cast::<Self>() }
            }

            pub(crate) fn raw(&self) -> *mut $c {
                self.0.get()
            }
        }
    };
}
use c_wrapper;
