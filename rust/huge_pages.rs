// SPDX-License-Identifier: GPL-2.0

//! Huge pages outside faults: splitting them ahead of dirty logging, and
//! bringing them back when dirty logging stops.
//!
//! # Lock rules
//!
//! - [`try_split`] runs with `mmu_lock` held for read (when dirty logging
//!   is enabled, concurrently with faults) or for write (before a dirty
//!   log is cleared). It allocates each new table with the lock dropped
//!   ([`Walk::with_lock_dropped`]) and links it as a fault does: by
//!   compare-and-exchange under the read lock, retrying an SPTE that
//!   changed. A split changes no translation, so it needs no TLB flush.
//! - [`recover`] runs with `mmu_lock` held for read. It replaces a table by
//!   the huge SPTE that maps the same memory, which removes the table (a
//!   freeze, see `crate::changes`), and flushes the slot's translations
//!   once at the end of each root.

use kernel::prelude::*;

use crate::changes::{self, Busy};
use crate::kvm::{
    make_huge_spte, make_small_spte, trace, Kvm, Memslot, MmuHeld, MmuRead, NewSp, RootRole,
    RootTypes, Sp, Walk,
};
use crate::level::{Level, SPTE_ENT_PER_PAGE};
use crate::roots::Roots;
use crate::spte::Spte;
use crate::stats::Counter;

/// Replace the huge page under `walk` with `sp`'s table, which maps the
/// same memory in pages one level smaller. The caller publishes and
/// accounts `sp` once this succeeds.
pub(crate) fn split(lock: &impl MmuHeld, walk: &mut Walk<'_>, sp: &mut NewSp) -> Result<(), Busy> {
    let kvm = walk.kvm();
    let huge = walk.old_spte();
    let role = RootRole::of(sp.sp());
    sp.fill(|i| make_small_spte(kvm, huge, role, i));
    let linked = changes::set(lock, walk, sp.nonleaf_spte());
    // The huge leaf's statistics went with it; account the new leaves.
    if linked.is_ok() {
        if let Some(lower) = walk.level().lower() {
            kvm.update_page_stats(lower, SPTE_ENT_PER_PAGE as i32);
        }
    }
    trace::split_huge_page(walk.gfn(), huge, walk.level(), linked.map_err(|Busy| EBUSY));
    linked
}

/// Split every huge page mapping `[start, end)` of `slot` above
/// `target_level` down to `target_level`, in every valid root. Best effort:
/// stops when memory is short (the pages then stay huge and are
/// write-protected whole).
pub(crate) fn try_split(
    kvm: &Kvm,
    lock: &mut impl MmuHeld,
    slot: &Memslot,
    start: u64,
    end: u64,
    target_level: Level,
) {
    let Some(min_level) = target_level.upper() else {
        kernel::warn_on!(true);
        return;
    };
    let mut roots = Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id()));
    while let Some(root) = roots.next(lock) {
        if split_root(kvm, lock, root, (start, end), min_level).is_err() {
            break;
        }
    }
}

/// Split the huge pages at or above `min_level` of `root` in
/// `[start, end)`. The walk visits an SPTE before the table below it, so a
/// 1 GiB page split into 2 MiB pages has those split next.
fn split_root(
    kvm: &Kvm,
    lock: &mut impl MmuHeld,
    root: Sp<'_>,
    (start, end): (u64, u64),
    min_level: Level,
) -> Result {
    let state = kvm.state();
    let mut spare: Option<NewSp> = None;
    let mut walk = Walk::new(kvm, root, min_level, start, end);
    while walk.valid() {
        if walk.cond_resched(lock, false) {
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        if !old.is_present() || !old.is_huge() {
            walk.next();
            continue;
        }
        let Some(sp) = spare.as_mut() else {
            spare = walk.with_lock_dropped(lock, NewSp::alloc);
            if spare.is_none() {
                trace::split_huge_page(walk.gfn(), old, walk.level(), Err(ENOMEM));
                return Err(ENOMEM);
            }
            // Back to this SPTE: it may have changed while the lock was
            // dropped.
            walk.next();
            continue;
        };
        let role = RootRole::of(walk.table().header()).child();
        sp.prepare(walk.sptep(), walk.gfn(), role);
        // Busy: a fault or a zap changed the SPTE; look at it again. The
        // spare is prepared again for wherever it goes.
        if split(&*lock, &mut walk, sp).is_ok() {
            if let Some(sp) = spare.take() {
                sp.publish_in(&walk).account(kvm, true);
            }
            state.count(Counter::TablesLinked);
            state.count(Counter::HugePagesSplit);
            walk.next();
        }
    }
    // A spare left over (a fault split the last page first) is freed on
    // drop.
    Ok(())
}

/// What [`first_leaf`] found.
enum FirstLeaf {
    /// A present leaf below the table.
    Found(Spte),
    /// No present leaf: nothing to make huge.
    None,
    /// The walk should yield first.
    Yield,
}

/// The first present leaf in the table that the non-leaf SPTE under
/// `parent` points to, from which the huge SPTE is made.
fn first_leaf(parent: &Walk<'_>) -> FirstLeaf {
    let Some(child) = parent.child() else {
        return FirstLeaf::None;
    };
    let start = parent.gfn();
    let mut walk = parent.sub_walk(child, Level::PG_4K, start, start + parent.level().pages());
    while walk.valid() {
        let spte = walk.old_spte();
        if spte.is_present() && spte.is_leaf(walk.level()) {
            // Checked on the parent walk, which makes progress: yielding
            // here would restart this look-up forever.
            if parent.need_resched() {
                return FirstLeaf::Yield;
            }
            return FirstLeaf::Found(spte);
        }
        walk.next();
    }
    FirstLeaf::None
}

/// Map `slot` with huge pages again where the host and KVM allow it, in
/// every valid root: each table that could be a huge page is replaced by
/// one. Holds `mmu_lock` for read.
pub(crate) fn recover(kvm: &Kvm, lock: &mut MmuRead<'_>, slot: &Memslot) {
    // Dirty logging needs the small pages; kvm.ko recovers only after it.
    if kernel::warn_on!(slot.dirty_logging()) {
        return;
    }
    let mut roots = Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id()));
    while let Some(root) = roots.next(lock) {
        recover_root(kvm, lock, root, slot);
    }
}

fn recover_root(kvm: &Kvm, lock: &mut MmuRead<'_>, root: Sp<'_>, slot: &Memslot) {
    let state = kvm.state();
    let (start, end) = (slot.base_gfn(), slot.end_gfn());
    let mut flush = false;
    let mut walk = Walk::new(kvm, root, Level::PG_2M, start, end);
    while walk.valid() {
        if walk.cond_resched(lock, flush) {
            flush = false;
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        let level = walk.level();
        let gfn = walk.gfn();
        // Tables only (a leaf that could be bigger has a table above it
        // that is replaced instead), whose whole range is in the slot
        // (else the slot's huge page information does not cover it),
        // where the slot may map at this level.
        if level > Level::PG_1G
            || !old.is_present()
            || old.is_leaf(level)
            || gfn < start
            || gfn >= end
            || slot.max_mapping_level(kvm, gfn) < level.get()
        {
            walk.next();
            continue;
        }
        let huge = match first_leaf(&walk) {
            FirstLeaf::Found(small) => make_huge_spte(kvm, small, level),
            FirstLeaf::None => {
                walk.next();
                continue;
            }
            FirstLeaf::Yield => continue,
        };
        // Busy: the table changed or went; look at the SPTE again.
        if changes::set_shared(lock, &mut walk, huge).is_ok() {
            state.count(Counter::HugePagesRecovered);
            flush = true;
            walk.next();
        }
    }
    drop(walk);
    if flush {
        kvm.flush_remote_tlbs_range(start, slot.npages());
    }
}
