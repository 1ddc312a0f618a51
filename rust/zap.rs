// SPDX-License-Identifier: GPL-2.0

//! Zapping: removing mappings, leaf by leaf or whole roots, and the
//! teardown of invalidated roots and of the VM's TDP MMU.
//!
//! TLB flushes are batched: a zap reports whether one is needed and the
//! caller flushes once, before it drops `mmu_lock` (or the zap flushes
//! before it yields the lock). Zapping in an invalid root needs no flush:
//! no vCPU enters the guest on an invalid root.

use crate::changes::{self, LeafZaps};
use crate::kvm::{
    max_gfn_exclusive, GfnRange, Kvm, MmuHeld, MmuRead, MmuWrite, NoGuestEntry, RootTypes,
    ScheduledZaps, Sp, Walk,
};
use crate::level::Level;
use crate::roots::{self, Roots};
use crate::spte::{Spte, NONPRESENT};
use crate::stats::Counter;

/// Zap every SPTE of `root`. In passes of increasing level (4KiB, 2MiB,
/// 1GiB, then the top level), so that each step is small and yielding comes
/// often: a step removes at most one table, whose entries the pass before
/// emptied, which keeps the VM within its reclaim budget (`Walk::finish`
/// leaves room for the root itself).
pub(crate) fn zap_root(kvm: &Kvm, lock: &mut impl MmuHeld, root: Sp<'_>) {
    kernel::warn_on!(root.root_refs() == 0);
    for level in [Level::PG_4K, Level::PG_2M, Level::PG_1G, root.level()] {
        if level <= root.level() {
            zap_root_at(kvm, lock, root, level);
        }
    }
}

fn zap_root_at(kvm: &Kvm, lock: &mut impl MmuHeld, root: Sp<'_>, zap_level: Level) {
    let mut walk = Walk::new(kvm, root, zap_level, 0, max_gfn_exclusive());
    let mut zaps = LeafZaps::new(kvm);
    let mut zapped = 0;
    while walk.valid() {
        if walk.cond_resched(lock, false) {
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        if !old.is_present() || walk.level() > zap_level {
            if !walk.seek(|spte| spte.is_present()) {
                walk.next();
            }
            continue;
        }
        let leaf = old.is_leaf(walk.level());
        if let (true, Some(write)) = (leaf, lock.exclusive()) {
            changes::zap_leaf(write, &mut walk, &mut zaps);
        } else if changes::set(&*lock, &mut walk, Spte(NONPRESENT)).is_ok() {
            zapped += u64::from(leaf);
        } else {
            // Busy: somebody changed the SPTE; look at it again.
            continue;
        }
        // Non-present SPTEs of the zap level are passed over a load each.
        if !walk.seek(|spte| spte.is_present()) {
            walk.next();
        }
    }
    drop(zaps);
    count_zapped(kvm, zapped);
    walk.finish(lock);
}

/// Which leaves an invalidation is for, in a VM whose private leaves are
/// mirrored in its one root: shared (not mirrored), private (mirrored).
#[derive(Clone, Copy)]
struct LeafFilter {
    shared: bool,
    private: bool,
}

impl LeafFilter {
    fn wants(self, leaf: Spte) -> bool {
        if leaf.is_mirrored() {
            self.private
        } else {
            self.shared
        }
    }
}

/// Zap the leaf SPTEs of `root` in `[start, end)` (those `filter` wants,
/// if given), yielding the lock if `can_yield`. Returns whether a TLB
/// flush is due, `flush` included.
fn zap_leafs_in(
    kvm: &Kvm,
    lock: &mut MmuWrite<'_>,
    root: Sp<'_>,
    (start, end): (u64, u64),
    can_yield: bool,
    mut flush: bool,
    filter: Option<LeafFilter>,
) -> bool {
    let end = end.min(max_gfn_exclusive());
    let mut walk = Walk::new(kvm, root, Level::PG_4K, start, end);
    let mut zaps = LeafZaps::new(kvm);
    while walk.valid() {
        if can_yield && walk.cond_resched(lock, flush) {
            flush = false;
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        if old.is_present()
            && old.is_leaf(walk.level())
            && filter.is_none_or(|filter| filter.wants(old))
        {
            changes::zap_leaf(lock, &mut walk, &mut zaps);
            flush |= !root.is_invalid();
        }
        // Non-present 4 KiB SPTEs are passed over a load each.
        if !walk.seek(|spte| spte.is_present()) {
            walk.next();
        }
    }
    flush
}

/// Zap the leaf SPTEs in `[start, end)` of every valid root.
pub(crate) fn zap_leafs(
    kvm: &Kvm,
    lock: &mut MmuWrite<'_>,
    start: u64,
    end: u64,
    mut flush: bool,
) -> bool {
    let mut roots = Roots::new(kvm, RootTypes::VALID, None);
    while let Some(root) = roots.next(lock) {
        flush = zap_leafs_in(kvm, lock, root, (start, end), true, flush, None);
    }
    count_flush(kvm, flush)
}

/// Count the leaves a walk zapped: once per walk, not per SPTE.
fn count_zapped(kvm: &Kvm, zapped: u64) {
    if zapped != 0 {
        kvm.state().add(Counter::LeafsZapped, zapped);
    }
}

/// An entry returns `flush` to kvm.ko, which flushes when it is true.
fn count_flush(kvm: &Kvm, flush: bool) -> bool {
    if flush {
        kvm.state().count(Counter::TlbFlushes);
    }
    flush
}

/// Zap the leaf SPTEs that an MMU notifier or guest_memfd range covers,
/// in every root of its address space that maps what it is for, invalid
/// roots included: the pages are going away whoever maps them. A TDX VM's
/// shared mappings are in its direct roots, its private ones in its mirror
/// root (`kvm_gfn_range_filter_to_root_types()`); a VM whose private leaves
/// are mirrored in its one root keeps the same rule leaf by leaf; in any
/// other VM, everything the range covers goes.
pub(crate) fn unmap_gfn_range(
    kvm: &Kvm,
    lock: &mut MmuWrite<'_>,
    range: &GfnRange,
    mut flush: bool,
) -> bool {
    let mut types = RootTypes::DIRECT.union(RootTypes::INVALID);
    let mut filter = None;
    if kvm.has_mirrored_tdp() {
        types = RootTypes::INVALID;
        if range.for_private() {
            types = types.union(RootTypes::MIRROR);
        }
        if range.for_shared() {
            types = types.union(RootTypes::DIRECT);
        }
    } else if kvm.state().external.is_some() && (range.for_shared() || range.for_private()) {
        filter = Some(LeafFilter {
            shared: range.for_shared(),
            private: range.for_private(),
        });
    }
    let mut roots = Roots::new(kvm, types, Some(range.as_id()));
    while let Some(root) = roots.next(lock) {
        let span = (range.start(), range.end());
        flush = zap_leafs_in(kvm, lock, root, span, range.may_block(), flush, filter);
    }
    count_flush(kvm, flush)
}

/// Zap every direct root, invalid ones included. No TLB flush: `gone`
/// says that no vCPU enters the guest again.
pub(crate) fn zap_all(lock: &mut MmuWrite<'_>, gone: &NoGuestEntry<'_>) {
    let kvm = gone.kvm();
    kernel::warn_on!(!core::ptr::eq(lock.kvm(), kvm));
    let types = RootTypes::DIRECT.union(RootTypes::INVALID);
    let mut roots = Roots::new(kvm, types, None);
    while let Some(root) = roots.next(lock) {
        zap_root(kvm, lock, root);
    }
}

/// Zap the SPTE that links `sp`, a table on the possible-NX-huge-page
/// list, so that the next fault may map a huge page there; for kvm.ko's
/// NX recovery worker, which holds `mmu_lock` for read and flushes. The
/// table is removed as by any zap, which takes it off the list
/// (`crate::pages`). Returns whether it was zapped: not if its SPTE no
/// longer links it (zapped, replaced, or frozen meanwhile).
pub(crate) fn zap_possible_nx_huge_page(kvm: &Kvm, lock: &MmuRead<'_>, sp: Sp<'_>) -> bool {
    assert!(
        core::ptr::eq(lock.kvm(), kvm),
        "kvm_rtdp: NX recovery of one VM under another VM's mmu_lock"
    );
    if kernel::warn_on!(!sp.is_tdp_mmu_page()) {
        return false;
    }
    // A root has no SPTE and is never on the list.
    let Some(sptep) = sp.parent_sptep() else {
        kernel::warn_on!(true);
        return false;
    };
    let mut old = sptep.read();
    if !sp.table().is_linked_by(old) {
        return false;
    }
    match changes::set_shared_at(lock, sptep, sp.gfn(), &mut old, Spte(NONPRESENT)) {
        Ok(()) => {
            kvm.state().count(Counter::NxHugePagesZapped);
            true
        }
        Err(changes::Busy) => {
            // Nothing but a zap or a replacement changes a non-leaf SPTE.
            kernel::warn_on!(sp.table().is_linked_by(old));
            false
        }
    }
}

/// Zap every root scheduled by [`roots::invalidate_roots`] and put the
/// TDP MMU's reference to it.
pub(crate) fn zap_invalidated_roots(kvm: &Kvm, lock: &mut impl MmuHeld, zaps: &ScheduledZaps<'_>) {
    let mut roots = Roots::new(kvm, RootTypes::ALL, None);
    while let Some(root) = roots.next(lock) {
        let Some(tdp_mmu_ref) = root.take_scheduled_zap(zaps, lock) else {
            continue;
        };
        kernel::warn_on!(!root.is_invalid());
        // No TLB flush: a vCPU flushes its TLB when it loads a new root.
        zap_root(kvm, lock, root);
        // Only now: notifiers must reach the root while it is being zapped.
        drop(tdp_mmu_ref);
    }
}

/// Tear down a VM's TDP MMU: every root zapped, and every removed table
/// freed.
pub(crate) fn uninit(kvm: &Kvm, zaps: ScheduledZaps<'_>) {
    {
        let mut lock = kvm.write_lock_mmu();
        roots::invalidate_roots(&lock, RootTypes::VALID);
        zap_invalidated_roots(kvm, &mut lock, &zaps);
    }
    kernel::warn_on!(!kvm.roots_empty());
    kvm.state().reclaim.drain();
}
