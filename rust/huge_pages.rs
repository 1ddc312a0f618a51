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
    make_huge_spte, make_nonleaf_spte, make_small_spte, Kvm, Memslot, MmuLock, RootRole, RootTypes,
    Sp, SpareSp, Table, Walk,
};
use crate::level::{Level, SPTE_ENT_PER_PAGE};
use crate::roots::Roots;
use crate::spte::Spte;
use crate::vm::Counter;

/// Replace the huge page under `walk` with `sp`'s table, which maps the
/// same memory in pages one level smaller, holding `mmu_lock` as `how`.
/// The caller accounts `sp` once this succeeds.
pub(crate) fn split(kvm: &Kvm, walk: &mut Walk<'_>, sp: Sp, how: MmuLock) -> Result<(), Busy> {
    let huge = walk.old_spte();
    let role = RootRole::of(sp);
    let table = sp.table();
    // Nobody sees `sp` before it is linked: plain writes.
    for i in 0..SPTE_ENT_PER_PAGE {
        table.sptep(i).write(make_small_spte(kvm, huge, role, i));
    }
    changes::set(kvm, walk, make_nonleaf_spte(table), how)?;
    // The huge leaf's statistics went with it; account the new leaves.
    if let Some(lower) = walk.level().lower() {
        kvm.update_page_stats(lower, SPTE_ENT_PER_PAGE as i32);
    }
    Ok(())
}

/// Split every huge page mapping `[start, end)` of `slot` above
/// `target_level` down to `target_level`, in every valid root, holding
/// `mmu_lock` as `how`. Best effort: stops when memory is short (the
/// pages then stay huge and are write-protected whole).
pub(crate) fn try_split(
    kvm: &Kvm,
    slot: &Memslot,
    start: u64,
    end: u64,
    target_level: i32,
    how: MmuLock,
) {
    kvm.assert_mmu_lock(how);
    let target = u8::try_from(target_level).ok().and_then(Level::new);
    let Some(min_level) = target.and_then(Level::upper) else {
        kernel::warn_on!(true);
        return;
    };
    for root in Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id())) {
        if split_root(kvm, root, start, end, min_level, how).is_err() {
            break;
        }
    }
}

/// Split the huge pages at or above `min_level` of `root` in
/// `[start, end)`. The walk visits an SPTE before the table below it, so a
/// 1 GiB page split into 2 MiB pages has those split next.
fn split_root(kvm: &Kvm, root: Sp, start: u64, end: u64, min_level: Level, how: MmuLock) -> Result {
    let stats = &kvm.state().stats;
    let mut spare: Option<SpareSp> = None;
    let mut walk = Walk::new(kvm, root, min_level, start, end);
    while walk.valid() {
        if walk.cond_resched(false, how) {
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        if !old.is_present() || !old.is_huge() {
            walk.next();
            continue;
        }
        let Some(page) = spare.as_ref() else {
            spare = walk.with_lock_dropped(how, SpareSp::alloc);
            if spare.is_none() {
                return Err(ENOMEM);
            }
            // Back to this SPTE: it may have changed while the lock was
            // dropped.
            walk.next();
            continue;
        };
        let parent = Sp::of_table(walk.sptep().table());
        let sp = page.prepare(walk.sptep(), walk.gfn(), RootRole::of(parent).child());
        // Busy: a fault or a zap changed the SPTE; look at it again. The
        // spare is prepared again for wherever it goes.
        if split(kvm, &mut walk, sp, how).is_ok() {
            sp.account(kvm, true);
            if let Some(page) = spare.take() {
                page.linked();
            }
            stats.count(Counter::TablesLinked);
            stats.count(Counter::HugePagesSplit);
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
fn first_leaf(kvm: &Kvm, parent: &Walk<'_>) -> FirstLeaf {
    let child = Sp::of_table(Table::child_of(parent.old_spte()));
    let start = parent.gfn();
    let mut walk = Walk::new(
        kvm,
        child,
        Level::PG_4K,
        start,
        start + parent.level().pages(),
    );
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
pub(crate) fn recover(kvm: &Kvm, slot: &Memslot) {
    kvm.assert_mmu_lock(MmuLock::Shared);
    // Dirty logging needs the small pages; kvm.ko recovers only after it.
    if kernel::warn_on!(slot.dirty_logging()) {
        return;
    }
    for root in Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id())) {
        recover_root(kvm, root, slot);
    }
}

fn recover_root(kvm: &Kvm, root: Sp, slot: &Memslot) {
    let stats = &kvm.state().stats;
    let (start, end) = (slot.base_gfn(), slot.end_gfn());
    let mut flush = false;
    let mut walk = Walk::new(kvm, root, Level::PG_2M, start, end);
    while walk.valid() {
        if walk.cond_resched(flush, MmuLock::Shared) {
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
        let huge = match first_leaf(kvm, &walk) {
            FirstLeaf::Found(small) => make_huge_spte(kvm, small, level),
            FirstLeaf::None => {
                walk.next();
                continue;
            }
            FirstLeaf::Yield => continue,
        };
        // Busy: the table changed or went; look at the SPTE again.
        if changes::set_shared(kvm, &mut walk, huge).is_ok() {
            stats.count(Counter::HugePagesRecovered);
            flush = true;
            walk.next();
        }
    }
    drop(walk);
    if flush {
        kvm.flush_remote_tlbs_range(start, slot.npages());
    }
}
