// SPDX-License-Identifier: GPL-2.0

//! Roots: finding and sharing them, and invalidating them. Their teardown
//! (zapping invalidated roots, the VM's end) is `crate::zap`'s.
//!
//! # Invariants
//!
//! - A root is on the VM's root list from its allocation until its last
//!   reference is put ([`RootRef`]); readers find roots under RCU and take a
//!   reference before leaving the read-side section.
//! - The TDP MMU itself holds one reference to each valid root (a root is
//!   born with two: the TDP MMU's and the allocating vCPU's). Invalidation
//!   (under `mmu_lock` for write) marks the root and schedules it for a
//!   zap; the zap puts the TDP MMU's reference, so the last reference of a
//!   valid root is never put.
//! - A zapped root is freed after an RCU grace period, as lockless walkers
//!   (fast page faults) may still be on it.

use kernel::sync::rcu;

use crate::kvm::{Kvm, ListedRoot, MmuHeld, MmuWrite, RootRef, RootTypes, Sp, Vcpu};

/// Whether `root` is of one of the `types` (`tdp_mmu_root_match()`).
pub(crate) fn matches(root: Sp<'_>, types: RootTypes) -> bool {
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
/// `wanted` accepts and whose reference could be taken. `from` is on the
/// list: its lifetime is a reference's.
fn find_root<'k>(
    kvm: &'k Kvm,
    from: Option<ListedRoot<'_>>,
    mut wanted: impl FnMut(Sp<'_>) -> bool,
) -> Option<RootRef<'k>> {
    let guard = rcu::read_lock();
    let mut pos = from;
    while let Some(root) = kvm.next_root_rcu(&guard, pos) {
        if wanted(root.sp()) {
            if let Some(held) = RootRef::try_get(kvm, root) {
                return Some(held);
            }
        }
        pos = Some(root);
    }
    None
}

/// The roots of `types` (and of address space `as_id`, if given), each
/// held by a reference while the caller works on it, so that the caller may
/// drop `mmu_lock` between roots or within one. [`Roots::next`] lends the
/// root until the next call; the reference is put then or on drop.
pub(crate) struct Roots<'k> {
    kvm: &'k Kvm,
    types: RootTypes,
    as_id: Option<i32>,
    held: Option<RootRef<'k>>,
}

impl<'k> Roots<'k> {
    pub(crate) fn new(kvm: &'k Kvm, types: RootTypes, as_id: Option<i32>) -> Self {
        Roots {
            kvm,
            types,
            as_id,
            held: None,
        }
    }

    /// The next root, for a holder of `mmu_lock` in either mode (as
    /// `tdp_mmu_next_root()` asserts).
    pub(crate) fn next(&mut self, _lock: &impl MmuHeld) -> Option<Sp<'_>> {
        let (types, as_id) = (self.types, self.as_id);
        let next = find_root(self.kvm, self.held.as_ref().map(RootRef::listed), |root| {
            matches(root, types) && as_id.is_none_or(|id| id == root.as_id())
        });
        // Puts the reference to the previous root, which the search
        // started from.
        self.held = next;
        self.held.as_ref().map(RootRef::sp)
    }
}

/// Every valid direct root of address space `as_id`, for a holder of
/// `mmu_lock` for write: no reference is taken, as the list cannot change
/// and no root can be freed under that lock, and `f` cannot yield it.
pub(crate) fn for_each_valid_locked(lock: &MmuWrite<'_>, as_id: i32, mut f: impl FnMut(Sp<'_>)) {
    lock.for_each_root(|root| {
        if matches(root.sp(), RootTypes::DIRECT) && root.as_id() == as_id {
            f(root.sp());
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
        let _lock = kvm.read_lock_mmu();
        // Most vCPUs find the root their first sibling made; look without
        // the pages lock first.
        find_root(kvm, None, |root| root.role_word() == role.word()).unwrap_or_else(|| {
            let pages = kvm.lock_pages();
            // Again under the pages lock: another vCPU may have added it.
            // A valid root on the list always has the TDP MMU's reference.
            let mut found = None;
            pages.for_each_root(|root| {
                if found.is_none() && root.role_word() == role.word() {
                    found = RootRef::try_get(kvm, root);
                    kernel::warn_on!(found.is_none());
                }
            });
            found.unwrap_or_else(|| pages.add_root(vcpu.alloc_sp(None, 0, role)))
        })
    };
    // The vCPU's reference keeps the root alive; if it is invalidated from
    // now on, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS keeps the vCPU off it.
    vcpu.set_root(root, mirror);
}

/// Mark the roots of `types` invalid and schedule them for a zap.
pub(crate) fn invalidate_roots(lock: &MmuWrite<'_>, types: RootTypes) {
    let types = if kernel::warn_on!(types.contains(RootTypes::INVALID)) {
        types.without(RootTypes::INVALID)
    } else {
        types
    };
    lock.for_each_root(|root| {
        if matches(root.sp(), types) {
            root.invalidate(lock);
        }
    });
}
