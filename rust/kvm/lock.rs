// SPDX-License-Identifier: GPL-2.0

//! The VM's locks: `mmu_lock` held for read or for write ([`MmuRead`],
//! [`MmuWrite`]), and `tdp_mmu_pages_lock` ([`PagesGuard`]).
//!
//! A function that needs `mmu_lock` in one mode takes that mode's token; a
//! function that works in either is generic over [`MmuHeld`]. A token made
//! by [`Kvm::read_lock_mmu`] or [`Kvm::write_lock_mmu`] owns the lock and
//! releases it on drop; one made by [`MmuRead::assume`] or
//! [`MmuWrite::assume`] stands for the lock kvm.ko's caller holds around an
//! entry point. Yielding the lock takes the token by `&mut`: nothing that
//! borrows it (roots reached without a reference under the write lock, a
//! walk) survives a yield.

use core::marker::PhantomData;

use kernel::bindings;
use kernel::sync::raw_rwlock::{RawRwLockReadGuard, RawRwLockWriteGuard};

use super::{Kvm, Sp};

/// How `mmu_lock` is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MmuLock {
    /// Held for read: SPTEs change only by atomic operations, concurrently
    /// with other readers.
    Shared,
    /// Held for write.
    Exclusive,
}

mod private {
    pub(crate) trait Sealed {}
}

/// `mmu_lock` held by this task, in the mode [`MmuHeld::MODE`]: implemented
/// by [`MmuRead`] and [`MmuWrite`] only.
pub(crate) trait MmuHeld: private::Sealed {
    /// How the lock is held.
    const MODE: MmuLock;

    /// The VM whose lock is held.
    fn kvm(&self) -> &Kvm;

    /// The write token, if this is one: lets code generic over the mode
    /// take the write-lock path (the answer is known at compile time).
    fn exclusive(&self) -> Option<&MmuWrite<'_>>;

    /// The read token, if this is one.
    fn shared(&self) -> Option<&MmuRead<'_>>;

    /// Drop and retake the lock if another thread waits for it or this one
    /// should reschedule. Nothing that borrows the token is used across
    /// the call (`&mut self`). May sleep: as with the kernel crate's
    /// sleeping locks, calling it in atomic context is a bug that
    /// `might_sleep()` reports, not one that types rule out.
    fn cond_resched(&mut self);

    /// Drop the lock, run `f`, which may sleep, and take it again (see
    /// [`MmuHeld::cond_resched`]).
    fn with_dropped<T>(&mut self, f: impl FnOnce() -> T) -> T;
}

macro_rules! token {
    ($(#[$meta:meta])* $name:ident, $mode:ident, $assert:ident, $guard:ident, $lock:ident,
     $cond_resched:ident, $unlocked:ident, $take:ident) => {
        $(#[$meta])*
        ///
        /// # Invariants
        ///
        /// While the value lives, the current task holds `kvm.mmu_lock` in
        /// the token's mode: through `guard`, which releases it on drop, or
        /// for kvm.ko's caller when `guard` is `None`.
        #[must_use = "dropping the token releases (or stops vouching for) the lock"]
        pub(crate) struct $name<'a> {
            kvm: &'a Kvm,
            guard: Option<$guard<'a>>,
            _not_send: PhantomData<*mut ()>,
        }

        impl<'a> $name<'a> {
            /// The lock that kvm.ko's caller holds around this entry point.
            ///
            /// # Safety
            ///
            /// The current task holds `kvm->mmu_lock` in this mode, and keeps
            /// it at least as long as the token lives.
            pub(crate) unsafe fn assume(kvm: &'a Kvm) -> Self {
                // What the caller promises, as far as lockdep can tell.
                kvm.mmu_lock().$assert();
                // INVARIANT: by the caller's guarantee.
                $name {
                    kvm,
                    guard: None,
                    _not_send: PhantomData,
                }
            }
        }

        impl Kvm {
            /// Take `mmu_lock` in this mode, for the entries that kvm.ko calls
            /// without it.
            pub(crate) fn $take(&self) -> $name<'_> {
                // INVARIANT: held by the guard until the token drops it.
                $name {
                    kvm: self,
                    guard: Some(self.mmu_lock().$lock()),
                    _not_send: PhantomData,
                }
            }
        }

        impl private::Sealed for $name<'_> {}

        impl MmuHeld for $name<'_> {
            const MODE: MmuLock = MmuLock::$mode;

            #[inline]
            fn kvm(&self) -> &Kvm {
                self.kvm
            }

            #[inline]
            fn exclusive(&self) -> Option<&MmuWrite<'_>> {
                token!(@exclusive self, $mode)
            }

            #[inline]
            fn shared(&self) -> Option<&MmuRead<'_>> {
                token!(@shared self, $mode)
            }

            fn cond_resched(&mut self) {
                match &mut self.guard {
                    Some(guard) => {
                        guard.cond_resched();
                    }
                    None => {
                        // `&mut self`: nothing borrowed from the token is
                        // used across the call.
                        // SAFETY: held in this mode by kvm.ko's caller.
                        unsafe { self.kvm.mmu_lock().$cond_resched() };
                    }
                }
            }

            fn with_dropped<T>(&mut self, f: impl FnOnce() -> T) -> T {
                // INVARIANT: held again when the call returns.
                match &mut self.guard {
                    Some(guard) => guard.unlocked(f),
                    // SAFETY: as in `cond_resched`.
                    None => unsafe { self.kvm.mmu_lock().$unlocked(f) },
                }
            }
        }
    };
    (@exclusive $self:ident, Exclusive) => {
        Some($self)
    };
    (@exclusive $self:ident, Shared) => {
        None
    };
    (@shared $self:ident, Shared) => {
        Some($self)
    };
    (@shared $self:ident, Exclusive) => {
        None
    };
}

token!(
    /// `mmu_lock` held for read.
    MmuRead,
    Shared,
    assert_held_read,
    RawRwLockReadGuard,
    read,
    cond_resched_read,
    unlocked_read,
    read_lock_mmu
);
token!(
    /// `mmu_lock` held for write.
    MmuWrite,
    Exclusive,
    assert_held_write,
    RawRwLockWriteGuard,
    write,
    cond_resched_write,
    unlocked_write,
    write_lock_mmu
);

/// `mmu_lock` held by kvm.ko's caller in a mode the entry point is not told
/// (the retry check runs under the read lock from the TDP MMU's fault
/// path and under the write lock from the shadow MMU's): enough to read
/// what writers change only under the write lock, not to change SPTEs.
///
/// # Invariants
///
/// While the value lives, the current task holds `kvm.mmu_lock` in some
/// mode.
#[must_use = "the token only vouches for the lock while it lives"]
pub(crate) struct MmuLocked<'a> {
    kvm: &'a Kvm,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> MmuLocked<'a> {
    /// The lock that kvm.ko's caller holds around this entry point.
    ///
    /// # Safety
    ///
    /// The current task holds `kvm->mmu_lock`, for read or for write, and
    /// keeps it at least as long as the token lives.
    pub(crate) unsafe fn assume(kvm: &'a Kvm) -> Self {
        kvm.mmu_lock().assert_held();
        // INVARIANT: by the caller's guarantee.
        MmuLocked {
            kvm,
            _not_send: PhantomData,
        }
    }

    /// The VM whose lock is held.
    #[inline]
    pub(crate) fn kvm(&self) -> &'a Kvm {
        self.kvm
    }
}

impl Kvm {
    /// Whether another thread waits for `mmu_lock`.
    pub(crate) fn mmu_lock_contended(&self) -> bool {
        self.mmu_lock().needbreak()
    }

    /// Take `tdp_mmu_pages_lock`, which orders changes to the root list and
    /// the possible-NX-huge-page list among holders of `mmu_lock` for read.
    pub(crate) fn lock_pages(&self) -> PagesGuard<'_> {
        // SAFETY: the lock was initialized by kvm_mmu_init_tdp_mmu().
        unsafe { bindings::spin_lock(&raw mut (*self.arch()).tdp_mmu_pages_lock) };
        // INVARIANT: just taken.
        PagesGuard { kvm: self }
    }
}

/// `tdp_mmu_pages_lock`, held.
///
/// # Invariants
///
/// The current task holds `kvm`'s pages lock while the value lives.
#[must_use = "dropping the guard releases the lock"]
pub(crate) struct PagesGuard<'a> {
    pub(super) kvm: &'a Kvm,
}

impl PagesGuard<'_> {
    /// Add `sp` to the VM's possible-NX-huge-page list.
    pub(crate) fn track_possible_nx_huge_page(&self, sp: Sp<'_>) {
        // SAFETY: the pages lock is held, as the list requires; `sp` is a
        // linked TDP MMU page.
        unsafe {
            bindings::track_possible_nx_huge_page(
                self.kvm.raw(),
                sp.raw(),
                bindings::kvm_mmu_type_KVM_TDP_MMU,
            )
        };
    }

    /// Take `sp` off the VM's possible-NX-huge-page list.
    pub(crate) fn untrack_possible_nx_huge_page(&self, sp: Sp<'_>) {
        // SAFETY: as in `track_possible_nx_huge_page`.
        unsafe {
            bindings::untrack_possible_nx_huge_page(
                self.kvm.raw(),
                sp.raw(),
                bindings::kvm_mmu_type_KVM_TDP_MMU,
            )
        };
    }
}

impl Drop for PagesGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: taken by `Kvm::lock_pages` (type invariant).
        unsafe { bindings::spin_unlock(&raw mut (*self.kvm.arch()).tdp_mmu_pages_lock) };
    }
}
