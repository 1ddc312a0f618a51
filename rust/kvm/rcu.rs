// SPDX-License-Identifier: GPL-2.0

//! RCU read-side sections as evidence: what keeps the tables a lockless
//! walk reaches alive.

use core::marker::PhantomData;

use kernel::sync::rcu;

/// An RCU read-side section that is held while a value of the type lives.
///
/// # Safety
///
/// Implementors are only constructed inside such a section, and the
/// section lasts at least until they are dropped.
pub(crate) unsafe trait RcuSection {}

// SAFETY: a guard holds its section until it is dropped.
unsafe impl RcuSection for rcu::Guard {}

/// The RCU read-side section kvm.ko holds around an entry that walks
/// without `mmu_lock` (`kvm_tdp_mmu_walk_lockless_begin()` .. `_end()`).
///
/// # Invariants
///
/// The section lasts at least as long as the value, which stays on the
/// stack of the entry (it is neither `Send` nor `Clone`).
pub(crate) struct CallerRcu(PhantomData<*mut ()>);

impl CallerRcu {
    /// # Safety
    ///
    /// The caller is inside an RCU read-side section that lasts until the
    /// returned value is dropped.
    pub(crate) unsafe fn assume() -> Self {
        // What the caller promises, as far as lockdep can tell.
        rcu::assert_read_lock_held();
        // INVARIANT: by the function's safety requirement.
        CallerRcu(PhantomData)
    }
}

// SAFETY: by the type invariant.
unsafe impl RcuSection for CallerRcu {}
