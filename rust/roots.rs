// SPDX-License-Identifier: GPL-2.0

//! Roots: their lifetime, invalidation and deferred zapping.
//!
//! # Invariants
//!
//! - A root is on the VM's root list from its allocation until its last
//!   reference is put. The list changes only under `tdp_mmu_pages_lock`;
//!   readers walk it under RCU and take a reference before leaving the
//!   read-side section.
//! - The TDP MMU itself holds one reference to each valid root (a root is
//!   born with two: the TDP MMU's and the allocating vCPU's). Invalidation
//!   (under `mmu_lock` for write) marks the root and schedules it for a
//!   zap; the zap puts the TDP MMU's reference, so the last reference of a
//!   valid root is never put.
//! - A zapped root is freed after an RCU grace period, as lockless walkers
//!   (fast page faults) may still be on it.

use kernel::sync::rcu;

use crate::kvm::{Kvm, MmuLock, RootTypes, Sp, Vcpu};
use crate::zap;

/// Whether `root` is of one of the `types` (`tdp_mmu_root_match()`).
pub(crate) fn matches(root: Sp, types: RootTypes) -> bool {
    if kernel::warn_on!(!types.contains(RootTypes::DIRECT) && !types.contains(RootTypes::MIRROR)) {
        return false;
    }
    if root.is_invalid() && !types.contains(RootTypes::INVALID) {
        return false;
    }
    if root.is_mirror() {
        types.contains(RootTypes::MIRROR)
    } else {
        types.contains(RootTypes::DIRECT)
    }
}

/// The first root after `from` (from the start of the list if `None`) that
/// `wanted` accepts and whose reference could be taken; the caller owns that
/// reference. `from` must be on the list (the caller holds a reference).
fn find_root(kvm: &Kvm, from: Option<Sp>, mut wanted: impl FnMut(Sp) -> bool) -> Option<Sp> {
    let guard = rcu::read_lock();
    let mut pos = from;
    while let Some(root) = kvm.next_root_rcu(&guard, pos) {
        if wanted(root) && root.try_get_root() {
            return Some(root);
        }
        pos = Some(root);
    }
    None
}

/// The roots of `types` (and of address space `as_id`, if given), each
/// held by a reference while the caller works on it, so that the caller may
/// drop `mmu_lock` between roots or within one. The reference to the last
/// root returned is put on the next call or on drop.
pub(crate) struct Roots<'a> {
    kvm: &'a Kvm,
    types: RootTypes,
    as_id: Option<i32>,
    held: Option<Sp>,
}

impl<'a> Roots<'a> {
    pub(crate) fn new(kvm: &'a Kvm, types: RootTypes, as_id: Option<i32>) -> Self {
        Roots {
            kvm,
            types,
            as_id,
            held: None,
        }
    }
}

impl Iterator for Roots<'_> {
    type Item = Sp;

    fn next(&mut self) -> Option<Sp> {
        // Every user walks the roots it gets under mmu_lock, in either
        // mode, as `tdp_mmu_next_root()` asserts.
        self.kvm.assert_mmu_lock_held();
        // `held` is still on the list: we hold a reference to it.
        let (types, as_id) = (self.types, self.as_id);
        let next = find_root(self.kvm, self.held, |root| {
            matches(root, types) && as_id.is_none_or(|id| id == root.as_id())
        });
        if let Some(prev) = self.held.take() {
            put_root(self.kvm, prev);
        }
        self.held = next;
        next
    }
}

impl Drop for Roots<'_> {
    fn drop(&mut self) {
        if let Some(root) = self.held.take() {
            put_root(self.kvm, root);
        }
    }
}

/// Every valid direct root of address space `as_id`, for a holder of
/// `mmu_lock` for write: no reference is taken, as the list cannot change
/// and no root can be freed under that lock. `f` must not drop the lock.
pub(crate) fn for_each_valid_locked(kvm: &Kvm, as_id: i32, mut f: impl FnMut(Sp)) {
    kvm.for_each_root_exclusive(|root| {
        if matches(root, RootTypes::DIRECT) && root.as_id() == as_id {
            f(root);
        }
    });
}

/// Give `vcpu` a root for its current role, reusing a valid one.
pub(crate) fn alloc_root(vcpu: &Vcpu, mirror: bool) {
    let kvm = vcpu.kvm();
    let role = if mirror {
        vcpu.root_role().with_mirror()
    } else {
        vcpu.root_role()
    };

    let root = {
        let _mmu = kvm.lock_mmu(MmuLock::Shared);
        // Most vCPUs find the root their first sibling made; look without
        // the pages lock first.
        let found = find_root(kvm, None, |root| root.role_word() == role.word());
        found.unwrap_or_else(|| {
            let pages = kvm.lock_pages();
            // Again under the pages lock: another vCPU may have added it.
            // A valid root on the list always has the TDP MMU's reference.
            let mut found = None;
            pages.for_each_root(|root| {
                if found.is_none()
                    && root.role_word() == role.word()
                    && !kernel::warn_on!(!root.try_get_root())
                {
                    found = Some(root);
                }
            });
            found.unwrap_or_else(|| {
                let root = vcpu.alloc_sp(None, 0, role);
                // INVARIANT: the TDP MMU's reference and the vCPU's.
                root.init_root_refs(2);
                pages.add_root(root);
                root
            })
        })
    };
    // The vCPU's reference keeps the root alive; if it is invalidated from
    // now on, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS keeps the vCPU off it.
    vcpu.set_root(root, mirror);
}

/// Put a reference to `root`; the last one frees it.
pub(crate) fn put_root(kvm: &Kvm, root: Sp) {
    if !root.put_root_ref() {
        return;
    }
    // INVARIANT: only invalidated roots lose their last reference.
    kernel::warn_on!(!root.is_tdp_mmu_page() || !root.is_invalid());
    kvm.lock_pages().del_root(root);
    root.free_after_grace_period(kvm);
}

/// Mark the roots of `types` invalid and schedule them for a zap. Holds
/// `mmu_lock` for write, unless the VM is being destroyed.
pub(crate) fn invalidate_roots(kvm: &Kvm, types: RootTypes) {
    let types = if kernel::warn_on!(types.contains(RootTypes::INVALID)) {
        types.without(RootTypes::INVALID)
    } else {
        types
    };
    kvm.for_each_root_exclusive(|root| {
        if matches(root, types) && !root.is_invalid() {
            root.set_scheduled_to_zap(true);
            root.set_invalid();
        }
    });
}

/// Zap every root scheduled by [`invalidate_roots`] and put the TDP MMU's
/// reference to it. Takes `mmu_lock` as `how`.
pub(crate) fn zap_invalidated_roots(kvm: &Kvm, how: MmuLock) {
    let _mmu = kvm.lock_mmu(how);
    for root in Roots::new(kvm, RootTypes::ALL, None) {
        if !root.scheduled_to_zap() {
            continue;
        }
        root.set_scheduled_to_zap(false);
        kernel::warn_on!(!root.is_invalid());
        // No TLB flush: a vCPU flushes its TLB when it loads a new root.
        zap::zap_root(kvm, root, how);
        // Only now: notifiers must reach the root while it is being zapped.
        put_root(kvm, root);
    }
}

/// Tear down a VM's TDP MMU: every root zapped, and every removed table
/// freed.
pub(crate) fn uninit(kvm: &Kvm) {
    invalidate_roots(kvm, RootTypes::VALID);
    zap_invalidated_roots(kvm, MmuLock::Exclusive);
    kernel::warn_on!(!kvm.roots_empty());
    kvm.state().reclaim.drain();
}
