// SPDX-License-Identifier: GPL-2.0

//! Changing an SPTE, and what a change entails: leaf statistics, and the
//! teardown of the table a removed non-leaf SPTE pointed to.
//!
//! # Invariants
//!
//! - Holding `mmu_lock` for read, SPTEs change only by compare-and-exchange
//!   from the value last read ([`set_shared`]); a failed exchange refreshes
//!   the walk's value and has no other effect.
//! - A non-leaf SPTE is removed under the read lock by freezing it (see
//!   `crate::freeze`): its table is torn down while the SPTE is frozen, so no
//!   fault installs anything in that range until the teardown is complete.
//! - Nobody but the freezer writes a frozen SPTE: both setters refuse a walk
//!   positioned on one.
//! - Every entry of a removed table ends frozen and the table is freed only
//!   after an RCU grace period.

use kernel::prelude::*;

use crate::freeze;
use crate::kvm::{Kvm, MmuLock, Sp, Sptep, Table, Walk};
use crate::level::{Level, SPTE_ENT_PER_PAGE};
use crate::pages;
use crate::spte::{Spte, FROZEN};
use crate::vm::Counter;

/// The bookkeeping of the SPTE at `gfn` and `level` in `sp` changing from
/// `old` to `new`, which has been written already (or is frozen for it).
pub(crate) fn handle_changed(
    kvm: &Kvm,
    sp: Sp,
    gfn: u64,
    old: Spte,
    new: Spte,
    level: Level,
    how: MmuLock,
) {
    let was_present = old.is_present();
    let is_present = new.is_present();
    let was_leaf = was_present && old.is_leaf(level);
    let is_leaf = is_present && new.is_leaf(level);
    let pfn_changed = old.pfn() != new.pfn();

    kernel::warn_on!(gfn & (level.pages() - 1) != 0);

    // A present leaf is never replaced by a leaf for another page: the MMU
    // notifier zaps first. Anything else means the guest may now access a
    // page the host has given away.
    if was_leaf && is_leaf && pfn_changed {
        panic!(
            "kvm_rtdp: present leaf SPTE replaced with another pfn: as_id {} gfn {:#x} old {:#x} new {:#x} level {}",
            sp.as_id(),
            gfn,
            old.0,
            new.0,
            level.get()
        );
    }
    if old == new {
        return;
    }
    if !was_present && !is_present {
        // Only MMIO SPTEs and freezes change one non-present value for
        // another.
        kernel::warn_on!(!kvm.is_mmio_spte(old) && !kvm.is_mmio_spte(new) && !new.is_frozen());
        return;
    }
    if was_present && !was_leaf && (is_leaf || !is_present || kernel::warn_on!(pfn_changed)) {
        remove_table(kvm, Table::child_of(old), how);
    }
    if is_leaf != was_leaf {
        kvm.update_page_stats(level, if is_leaf { 1 } else { -1 });
    }
}

/// Tear down `table`, which its parent SPTE no longer points to and which
/// the caller therefore owns: every entry is frozen for good, its change
/// handled (recursively for subtables), and the table freed after a grace
/// period, as lockless walkers may still be reading it.
fn remove_table(kvm: &Kvm, table: Table, how: MmuLock) {
    let sp = Sp::of_table(table);
    let level = sp.level();
    let base = sp.gfn();

    pages::unlinked(kvm, sp);
    kvm.state().stats.count(Counter::TablesRemoved);

    for i in 0..SPTE_ENT_PER_PAGE {
        let sptep = table.sptep(i);
        let gfn = base + i as u64 * level.pages();
        let old = match how {
            // A fault may be in the middle of a freeze of this entry: wait
            // for it to finish, then take the entry.
            MmuLock::Shared => freeze::freeze_removed(sptep.atomic(), core::hint::spin_loop),
            MmuLock::Exclusive => {
                let old = sptep.read();
                // Non-present entries have nothing to account, and nobody
                // can make them present while mmu_lock is held for write.
                if !old.is_present() {
                    continue;
                }
                // Written atomically all the same: the CPU may still set
                // the Dirty bit through a cached upper-level entry.
                write_exclusive(sptep, old, Spte(FROZEN), level)
            }
        };
        handle_changed(kvm, sp, gfn, old, Spte(FROZEN), level, how);
    }

    sp.free_after_grace_period(kvm);
}

/// Write `new` over `old` holding `mmu_lock` for write; the value replaced,
/// which differs from `old` only in bits the CPU or the fast page fault set
/// meanwhile.
fn write_exclusive(sptep: Sptep, old: Spte, new: Spte, level: Level) -> Spte {
    if Sptep::needs_atomic_update(old, level) {
        sptep.xchg(new)
    } else {
        sptep.write(new);
        old
    }
}

/// The SPTE under `walk` changed under the caller: it must re-read and
/// retry, or give up.
#[derive(Debug)]
pub(crate) struct Busy;

/// Set the SPTE under `walk` to `new` holding `mmu_lock` for read, if it
/// still holds the value the walk read. On [`Busy`] the walk holds the
/// current value.
pub(crate) fn set_shared(kvm: &Kvm, walk: &mut Walk<'_>, new: Spte) -> Result<(), Busy> {
    let mut old = walk.old_spte();
    let result = set_shared_at(kvm, walk.sptep(), walk.gfn(), walk.level(), &mut old, new);
    if result.is_err() {
        walk.set_old_spte(old);
    }
    result
}

/// Set the SPTE at `sptep`, which maps `gfn` at `level`, from `*old` to
/// `new` holding `mmu_lock` for read. On [`Busy`] `*old` is the current
/// value.
pub(crate) fn set_shared_at(
    kvm: &Kvm,
    sptep: Sptep,
    gfn: u64,
    level: Level,
    old: &mut Spte,
    new: Spte,
) -> Result<(), Busy> {
    kvm.assert_mmu_lock(MmuLock::Shared);
    let sp = Sp::of_table(sptep.table());
    let expected = *old;

    if kernel::warn_on!(expected.is_frozen() || new.is_frozen()) {
        return Err(Busy);
    }

    if expected.is_present() && !expected.is_leaf(level) {
        // Removing or replacing a table: freeze first (see the module
        // invariants).
        let frozen = freeze::freeze(sptep.atomic(), expected).map_err(|current| {
            *old = current;
            Busy
        })?;
        handle_changed(kvm, sp, gfn, expected, new, level, MmuLock::Shared);
        frozen.finish(new);
    } else {
        sptep.cmpxchg(expected, new).map_err(|current| {
            *old = current;
            Busy
        })?;
        handle_changed(kvm, sp, gfn, expected, new, level, MmuLock::Shared);
    }
    Ok(())
}

/// Set the SPTE under `walk` to `new` holding `mmu_lock` for write.
pub(crate) fn set_exclusive(kvm: &Kvm, walk: &mut Walk<'_>, new: Spte) {
    kvm.assert_mmu_lock(MmuLock::Exclusive);
    let old = walk.old_spte();
    if kernel::warn_on!(old.is_frozen() || new.is_frozen()) {
        return;
    }
    let level = walk.level();
    let sptep = walk.sptep();
    let old = write_exclusive(sptep, old, new, level);
    walk.set_old_spte(old);
    handle_changed(
        kvm,
        Sp::of_table(sptep.table()),
        walk.gfn(),
        old,
        new,
        level,
        MmuLock::Exclusive,
    );
}

/// Set the SPTE under `walk` to `new` with `mmu_lock` held as `how`.
pub(crate) fn set(kvm: &Kvm, walk: &mut Walk<'_>, new: Spte, how: MmuLock) -> Result<(), Busy> {
    match how {
        MmuLock::Shared => set_shared(kvm, walk, new),
        MmuLock::Exclusive => {
            set_exclusive(kvm, walk, new);
            Ok(())
        }
    }
}
