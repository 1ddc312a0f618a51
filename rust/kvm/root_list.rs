// SPDX-License-Identifier: GPL-2.0

//! The VM's root list (`kvm->arch.tdp_mmu_roots`) and references to roots
//! (`tdp_mmu_root_count`).
//!
//! # Invariants
//!
//! - The list changes only under `tdp_mmu_pages_lock` ([`PagesGuard`]);
//!   readers walk it under RCU, or hold `mmu_lock` for write, under which
//!   no root is added or freed.
//! - A [`RootRef`] owns one reference to its root; the root stays on the
//!   list, and so alive, until its last reference is put. The TDP MMU's own
//!   reference to a valid root is not a value: it is owed while the root is
//!   valid or scheduled for its zap, and [`Sp::take_scheduled_zap`] turns
//!   it into a [`RootRef`] exactly once: only the holder of a
//!   [`ScheduledZaps`] clears the flag outside the write lock.

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use kernel::bindings;
use kernel::sync::atomic::Relaxed;
use kernel::sync::{rcu, Refcount};

use super::{Kvm, MmuHeld, MmuWrite, NewSp, PagesGuard, RemovedSp, Sp};

/// This task is the only one taking the scheduled zaps of `kvm`'s roots
/// ([`Sp::take_scheduled_zap`]) while the value lives.
///
/// # Invariants
///
/// While the value lives no other task clears a root's
/// `tdp_mmu_scheduled_root_to_zap` flag: [`Sp::invalidate`] only sets it,
/// under the write lock, and every other clearer holds this value.
pub(crate) struct ScheduledZaps<'a> {
    kvm: &'a Kvm,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> ScheduledZaps<'a> {
    /// Stand for kvm.ko's guarantee that the scheduled zaps of `kvm` run
    /// one at a time.
    ///
    /// # Safety
    ///
    /// No other task takes `kvm`'s scheduled zaps until the value is
    /// dropped: kvm.ko calls `kvm_tdp_mmu_zap_invalidated_roots()` with
    /// `slots_lock` held (`__kvm_mmu_zap_all_fast_back_half()` asserts it),
    /// and tears the VM down when no other task uses it. Neither is implied
    /// by `mmu_lock`, which the zaps hold for read or yield.
    pub(crate) unsafe fn assume(kvm: &'a Kvm) -> Self {
        // INVARIANT: by the caller's guarantee.
        ScheduledZaps {
            kvm,
            _not_send: PhantomData,
        }
    }
}

/// Which roots an operation covers (`enum kvm_tdp_mmu_root_types`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootTypes(pub(crate) u32);

impl RootTypes {
    pub(crate) const INVALID: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_INVALID_ROOTS);
    pub(crate) const DIRECT: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_DIRECT_ROOTS);
    pub(crate) const MIRROR: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_MIRROR_ROOTS);
    pub(crate) const VALID: RootTypes = RootTypes(Self::DIRECT.0 | Self::MIRROR.0);
    pub(crate) const ALL: RootTypes = RootTypes(Self::VALID.0 | Self::INVALID.0);

    pub(crate) const fn contains(self, other: RootTypes) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) const fn union(self, other: RootTypes) -> RootTypes {
        RootTypes(self.0 | other.0)
    }

    pub(crate) const fn without(self, other: RootTypes) -> RootTypes {
        RootTypes(self.0 & !other.0)
    }
}

/// A root of a VM's root list, as a reader of the list found it: what the
/// list's operations take back (the next root, a reference), so that no
/// other page, nor another VM's root, reaches them.
///
/// # Invariants
///
/// `sp` was an entry of the root list of the VM `kvm` when it was read, and
/// is alive for `'a` (what kept the list stable or its entries alive when
/// it was read: RCU, the pages lock, the write lock, a reference).
#[derive(Clone, Copy)]
pub(crate) struct ListedRoot<'a> {
    kvm: NonNull<Kvm>,
    sp: Sp<'a>,
}

impl<'a> ListedRoot<'a> {
    /// The root's page.
    #[inline]
    pub(crate) fn sp(self) -> Sp<'a> {
        self.sp
    }

    fn of(self, kvm: &Kvm) -> bool {
        core::ptr::eq(self.kvm.as_ptr(), kvm)
    }
}

impl<'a> Deref for ListedRoot<'a> {
    type Target = Sp<'a>;

    #[inline]
    fn deref(&self) -> &Sp<'a> {
        &self.sp
    }
}

impl Kvm {
    /// `sp`, an entry of this VM's root list, alive for `'a`.
    ///
    /// # Safety
    ///
    /// `sp` is on the list (or was when an RCU reader read it) and alive
    /// for `'a`.
    unsafe fn listed<'a>(&self, sp: Sp<'a>) -> ListedRoot<'a> {
        // INVARIANT: by the caller's guarantee.
        ListedRoot {
            kvm: NonNull::from(self),
            sp,
        }
    }

    fn roots_head(&self) -> *mut bindings::list_head {
        // SAFETY: field address of a valid VM.
        unsafe { &raw mut (*self.arch()).tdp_mmu_roots }
    }

    /// The root after `prev` on the root list (the first when `prev` is
    /// `None`), as an RCU reader sees the list; valid until the end of the
    /// read-side section `_rcu` unless a reference is taken.
    pub(crate) fn next_root_rcu<'g>(
        &self,
        _rcu: &'g rcu::Guard,
        prev: Option<ListedRoot<'g>>,
    ) -> Option<ListedRoot<'g>> {
        let head = self.roots_head();
        let link = match prev {
            Some(root) if kernel::warn_on!(!root.of(self)) => return None,
            // SAFETY: `root` is a live root of this VM's list (`ListedRoot`'s
            // invariant), whose `link` is a list entry.
            Some(root) => unsafe { &raw mut (*root.raw()).link },
            None => head,
        };
        // SAFETY: `link` is a list_head of the RCU-protected root list, or
        // was until `prev` was deleted, which RCU readers may still follow;
        // `next` is read once, as list_next_or_null_rcu() does.
        let next = unsafe { core::ptr::read_volatile(&raw const (*link).next) };
        if next == head {
            return None;
        }
        // SAFETY: every entry of `tdp_mmu_roots` is the `link` of a
        // kvm_mmu_page, freed only after a grace period once deleted; it was
        // on the list when read, inside the section `_rcu`.
        Some(unsafe { self.listed(Sp::from_link(next)) })
    }

    /// Every root on the list.
    ///
    /// # Safety
    ///
    /// The list cannot change during the call, and its roots are not freed
    /// before `'a` ends.
    unsafe fn for_each_root_stable<'a>(&'a self, mut f: impl FnMut(ListedRoot<'a>)) {
        let head = self.roots_head();
        // SAFETY: the list is stable (the caller's guarantee); every entry
        // is the `link` of a kvm_mmu_page, alive for `'a`.
        unsafe {
            let mut pos = (*head).next;
            while pos != head {
                let root = self.listed(Sp::from_link(pos));
                pos = (*pos).next;
                f(root);
            }
        }
    }

    /// Whether the root list is empty.
    pub(crate) fn roots_empty(&self) -> bool {
        let head = self.roots_head();
        // SAFETY: reads the first link of a valid list.
        unsafe { core::ptr::read_volatile(&raw const (*head).next) == head }
    }
}

impl MmuWrite<'_> {
    /// Every root on the list, without a reference: under the write lock
    /// the list cannot change and no root is freed, and `f` cannot yield
    /// the lock (that takes the token by `&mut`) while it holds one.
    pub(crate) fn for_each_root(&self, f: impl FnMut(ListedRoot<'_>)) {
        // SAFETY: see above; the roots borrow `self`.
        unsafe { self.kvm().for_each_root_stable(f) };
    }
}

impl<'k> PagesGuard<'k> {
    /// Every root on the list: list writers hold the pages lock, so the
    /// list cannot change under the guard, and a root is freed only after
    /// it was taken off the list and a grace period passed.
    pub(crate) fn for_each_root(&self, f: impl FnMut(ListedRoot<'_>)) {
        // SAFETY: see above; the roots borrow the guard.
        unsafe { self.kvm.for_each_root_stable(f) };
    }

    /// Make `sp`, a fresh page, a root on the VM's root list, with the
    /// TDP MMU's reference and the one returned.
    pub(crate) fn add_root(&self, sp: NewSp) -> RootRef<'k> {
        let root = sp.publish();
        // SAFETY: a TDP MMU page, which nobody else sees yet, allocated
        // until its last reference is put.
        unsafe { root_count(root) }.set(2);
        // SAFETY: the pages lock serializes list writers; `root` is not on
        // any list.
        unsafe { bindings::list_add_rcu(&raw mut (*root.as_ptr()).link, self.kvm.roots_head()) };
        // INVARIANT: one of the two references set above.
        RootRef {
            kvm: self.kvm,
            root,
        }
    }
}

/// The reference count of `root` (`tdp_mmu_root_count`), as the kernel
/// crate's [`Refcount`].
///
/// # Safety
///
/// `root` is a TDP MMU page that stays allocated for `'a` (the count is
/// that of a shadow page's union; in TDP MMU pages only roots change it).
unsafe fn root_count<'a>(root: NonNull<bindings::kvm_mmu_page>) -> &'a Refcount {
    // SAFETY: a `refcount_t` of a live root (the caller's guarantee);
    // `Refcount` is a transparent wrapper of one.
    unsafe { &*(&raw mut (*root.as_ptr()).__bindgen_anon_2.tdp_mmu_root_count).cast::<Refcount>() }
}

/// A reference to a root, put when dropped; the last one frees the root
/// after a grace period (`kvm_tdp_mmu_put_root()`).
///
/// # Invariants
///
/// Owns one reference to `root`, a root of `kvm`.
pub(crate) struct RootRef<'k> {
    kvm: &'k Kvm,
    root: NonNull<bindings::kvm_mmu_page>,
}

impl<'k> RootRef<'k> {
    /// Take a reference to `root`, a root of `kvm`'s list, unless its last
    /// one was put.
    pub(crate) fn try_get(kvm: &'k Kvm, root: ListedRoot<'_>) -> Option<Self> {
        if kernel::warn_on!(!root.of(kvm)) {
            return None;
        }
        // SAFETY: a live root (`ListedRoot`'s invariant).
        let count = unsafe { root_count(root.ptr()) };
        // 7.3's `Refcount` has no `inc_not_zero`.
        // SAFETY: a valid `refcount_t`.
        let got = unsafe { bindings::refcount_inc_not_zero(count.as_atomic().as_ptr().cast()) };
        // INVARIANT: the reference just taken.
        got.then_some(RootRef {
            kvm,
            root: root.ptr(),
        })
    }

    /// The reference that kvm.ko hands over to `put_root`.
    ///
    /// # Safety
    ///
    /// `root` is a root of `kvm`, and the caller owns a reference to it,
    /// which it gives to the result.
    pub(crate) unsafe fn from_raw(kvm: &'k Kvm, root: *mut bindings::kvm_mmu_page) -> Self {
        // INVARIANT: by the caller's guarantee.
        RootRef {
            kvm,
            // SAFETY: not null: a root.
            root: unsafe { NonNull::new_unchecked(root) },
        }
    }

    /// The root.
    pub(crate) fn sp(&self) -> Sp<'_> {
        // SAFETY: alive while the reference is held (type invariant).
        unsafe { Sp::from_raw(self.root.as_ptr()) }
    }

    /// The root, as an entry of the VM's list.
    pub(crate) fn listed(&self) -> ListedRoot<'_> {
        // SAFETY: a held root stays on its VM's list (module invariants)
        // while `self` is borrowed.
        unsafe { self.kvm.listed(self.sp()) }
    }

    /// Give the reference to kvm.ko, which puts it with `put_root`.
    pub(crate) fn into_raw(self) -> NonNull<bindings::kvm_mmu_page> {
        let root = self.root;
        core::mem::forget(self);
        root
    }
}

impl Drop for RootRef<'_> {
    fn drop(&mut self) {
        // SAFETY: this value owns a reference (type invariant).
        // SAFETY: the root lives while this reference is held.
        if !unsafe { root_count(self.root) }.dec_and_test() {
            return;
        }
        // SAFETY: the last reference is ours: nobody can take another (a
        // zero count is never raised again), and the root is still on the
        // list, alive.
        let sp = unsafe { Sp::from_raw(self.root.as_ptr()) };
        // Only invalidated roots lose their last reference: the TDP MMU
        // holds one to each valid root.
        kernel::warn_on!(!sp.is_tdp_mmu_page() || !sp.is_invalid());
        {
            let _pages = self.kvm.lock_pages();
            // SAFETY: the pages lock serializes list writers; the root is
            // on the list.
            unsafe { bindings::list_del_rcu(&raw mut (*self.root.as_ptr()).link) };
        }
        // SAFETY: off the list with its last reference gone: unreachable
        // but by RCU readers that found it before.
        let removed = unsafe { RemovedSp::from_raw(self.root) };
        removed.free_after_grace_period(self.kvm);
    }
}

impl<'a> Sp<'a> {
    /// Whether a root awaits its zap after invalidation: set only under the
    /// write lock, which `_lock` excludes or is.
    fn scheduled_to_zap(self, _lock: &impl MmuHeld) -> bool {
        // SAFETY: the union member of TDP MMU pages; its writers hold the
        // write lock, or `ScheduledZaps` (`take_scheduled_zap`), the only
        // caller.
        unsafe { (*self.raw()).__bindgen_anon_1.tdp_mmu_scheduled_root_to_zap }
    }

    /// Mark the valid root `self` invalid and schedule its zap, which puts
    /// the TDP MMU's reference; false if it was invalid already.
    pub(crate) fn invalidate(self, _lock: &MmuWrite<'_>) -> bool {
        if self.is_invalid() {
            return false;
        }
        // SAFETY: the write lock orders all writers of the role and of the
        // flag.
        unsafe {
            (*self.raw()).__bindgen_anon_1.tdp_mmu_scheduled_root_to_zap = true;
            (*self.raw()).role.__bindgen_anon_1.set_invalid(1);
        }
        true
    }

    /// If the root is scheduled for its zap, unschedule it and hand over
    /// the TDP MMU's reference, which the zap puts when it is done.
    pub(crate) fn take_scheduled_zap<'k>(
        self,
        zaps: &ScheduledZaps<'k>,
        lock: &impl MmuHeld,
    ) -> Option<RootRef<'k>> {
        let kvm = zaps.kvm;
        if !self.scheduled_to_zap(lock) {
            return None;
        }
        // SAFETY: the flag is set only under the write lock, which `lock`
        // excludes or is, and cleared only by the holder of `zaps`, this
        // task (its type invariant).
        unsafe { (*self.raw()).__bindgen_anon_1.tdp_mmu_scheduled_root_to_zap = false };
        // INVARIANT: the flag stood for the TDP MMU's reference (module
        // invariants), cleared above so that it is handed over once.
        Some(RootRef {
            kvm,
            root: self.ptr(),
        })
    }

    /// References held on the root.
    pub(crate) fn root_refs(self) -> u32 {
        // SAFETY: a TDP MMU page alive for `'a`.
        let count = unsafe { root_count(self.ptr()) };
        count.as_atomic().load(Relaxed) as u32
    }
}
