// SPDX-License-Identifier: GPL-2.0

//! Changing an SPTE, and what a change entails: leaf statistics, and the
//! teardown of the table a removed non-leaf SPTE linked.
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
//!   after an RCU grace period: the exchange that unlinks it hands it over
//!   as a [`RemovedSp`], whose only way out is that.

use core::convert::Infallible;

use kernel::prelude::*;

use crate::freeze::NotChanged;
use crate::kvm::{trace, Kvm, MmuHeld, MmuRead, MmuWrite, RemovedSp, Replaced, Sp, Sptep, Walk};
use crate::level::{Level, SPTE_ENT_PER_PAGE};
use crate::mirror::{External, Refusal};
use crate::pages;
use crate::spte::{Spte, FROZEN, NONPRESENT};
use crate::stats::Counter;

/// The bookkeeping of the SPTE at `gfn` and `level` in `sp` changing to
/// `new`, which has been written already (or is frozen for it), from what
/// `replaced` says it held; a mirrored leaf's change goes to the external
/// page table first, and nothing else is done if it refuses.
fn handle_changed(
    lock: &impl MmuHeld,
    sp: Sp<'_>,
    gfn: u64,
    replaced: Replaced,
    new: Spte,
    level: Level,
) -> Result<(), Refusal> {
    let kvm = lock.kvm();
    let (old, removed) = replaced.into_parts();
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
    // A table is only ever replaced by a leaf or by nothing.
    kernel::warn_on!(was_present && !was_leaf && is_present && !is_leaf && pfn_changed);
    let unlinked = removed.is_some();
    if let Some(table) = removed {
        remove_table(lock, table);
    }
    if old == new {
        return Ok(());
    }
    // Writable implies MMU-writable implies host-writable: a leaf that
    // breaks it could let the guest write a page KVM write-protects.
    if is_leaf && !new.writable_invariants_hold(&kvm.state().masks) {
        kernel::warn_on!(true);
        pr_err!(
            "kvm_rtdp: leaf SPTE breaks the writable invariants: {:#x}\n",
            new.0
        );
    }
    if !was_present && !is_present {
        // Only MMIO SPTEs and freezes change one non-present value for
        // another.
        kernel::warn_on!(!kvm.is_mmio_spte(old) && !kvm.is_mmio_spte(new) && !new.is_frozen());
        trace::spte_changed(sp.as_id(), gfn, level, old, new);
        return Ok(());
    }
    // Every change of a mirror root's SPTE (TDX) or of a mirrored leaf goes
    // to the external page table, but for the removal of a table: its
    // entries went one by one, and the table itself is freed.
    if !unlinked && (sp.is_mirror() || old.is_mirrored() || new.is_mirrored()) {
        propagate(kvm, gfn, level, old, new, was_leaf || is_leaf)?;
    }
    trace::spte_changed(sp.as_id(), gfn, level, old, new);
    if is_leaf != was_leaf {
        kvm.update_page_stats(level, if is_leaf { 1 } else { -1 });
    }
    Ok(())
}

/// Tell the VM's external page table that the mirrored SPTE at `gfn` and
/// `level` (a `leaf` before or after) changes from `old` to `new`; counted.
fn propagate(
    kvm: &Kvm,
    gfn: u64,
    level: Level,
    old: Spte,
    new: Spte,
    leaf: bool,
) -> Result<(), Refusal> {
    let state = kvm.state();
    let Some(external) = state.external.as_ref() else {
        // Only a VM with an external page table has mirror roots or
        // mirrored leaves.
        kernel::warn_on!(true);
        return Err(Refusal::Failed(EINVAL.to_errno()));
    };
    // Mirrored leaves are 4 KiB: the external table maps no huge page.
    if kernel::warn_on!(leaf && level != Level::PG_4K) {
        return Err(Refusal::Failed(EINVAL.to_errno()));
    }
    let result = external.set(gfn, level, old, new);
    state.count(match result {
        Ok(()) => Counter::ExternalChanges,
        Err(Refusal::Busy) => Counter::ExternalBusy,
        Err(Refusal::Failed(_)) => Counter::ExternalFailed,
    });
    result
}

/// [`handle_changed`] where the change cannot be undone: `mmu_lock` held
/// for write, or an entry of a removed table. A refusal of the external
/// page table leaves it different from the mirror, which kvm.ko's
/// `KVM_BUG_ON()` makes the VM's end (as 7.3's `handle_changed_spte()`).
fn handle_changed_for_good(
    lock: &impl MmuHeld,
    sp: Sp<'_>,
    gfn: u64,
    replaced: Replaced,
    new: Spte,
    level: Level,
) {
    let old = replaced.old();
    if let Err(refusal) = handle_changed(lock, sp, gfn, replaced, new, level) {
        pr_err!(
            "kvm_rtdp: external page table refused a change that cannot be undone: gfn {:#x} level {} {:#x} -> {:#x}: {:?}\n",
            gfn,
            level.get(),
            old.0,
            new.0,
            refusal
        );
        lock.kvm().bug();
    }
}

/// Tear down `table`, which its parent SPTE no longer links: every entry
/// is frozen for good, its change handled (recursively for subtables), and
/// the table freed after a grace period, as lockless walkers may still be
/// reading it.
///
/// Out of line: `handle_changed` runs for every change and calls this for
/// few of them; inlined, its 512-entry loop made every change pay for a
/// larger stack frame.
#[inline(never)]
fn remove_table(lock: &impl MmuHeld, table: RemovedSp) {
    let kvm = lock.kvm();
    let sp = table.sp();
    let level = sp.level();
    let base = sp.gfn();
    let entries = sp.table();

    trace::prepare_zap_page(sp);
    pages::unlinked(kvm, sp);
    kvm.state().count(Counter::TablesRemoved);

    for i in 0..SPTE_ENT_PER_PAGE {
        let sptep = entries.sptep(i);
        let gfn = base + i as u64 * level.pages();
        let replaced = match lock.exclusive() {
            // A fault may be in the middle of a freeze of this entry: wait
            // for it to finish, then take the entry.
            None => sptep.freeze_removed(),
            Some(write) => {
                let old = sptep.read();
                // Non-present entries have nothing to account, and nobody
                // can make them present while mmu_lock is held for write.
                if !old.is_present() {
                    continue;
                }
                // Written atomically all the same where the CPU may still
                // set the Dirty bit through a cached upper-level entry.
                sptep.write(write, old, Spte(FROZEN))
            }
        };
        handle_changed_for_good(lock, sp, gfn, replaced, Spte(FROZEN), level);
    }

    if sp.is_mirror() {
        match kvm.state().external.as_ref() {
            Some(external) => external.free_spt(&table),
            None => {
                kernel::warn_on!(true);
            }
        }
    }
    table.free_after_grace_period(kvm);
}

/// The SPTE under `walk` changed under the caller: it must re-read and
/// retry, or give up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Busy;

/// Set the SPTE under `walk` to `new` holding `mmu_lock` for read, if it
/// still holds the value the walk read. On [`Busy`] the walk holds the
/// current value.
pub(crate) fn set_shared(lock: &MmuRead<'_>, walk: &mut Walk<'_>, new: Spte) -> Result<(), Busy> {
    walk.assert_locked_by(lock);
    let mut old = walk.old_spte();
    let result = set_shared_at(lock, walk.sptep(), walk.gfn(), &mut old, new);
    if result.is_err() {
        walk.reread();
    }
    result
}

/// Set the SPTE at `sptep`, which maps `gfn`, from `*old` to `new` holding
/// `mmu_lock` for read. On [`Busy`] `*old` is the current value.
pub(crate) fn set_shared_at(
    lock: &MmuRead<'_>,
    sptep: Sptep<'_>,
    gfn: u64,
    old: &mut Spte,
    new: Spte,
) -> Result<(), Busy> {
    let level = sptep.level();
    let sp = sptep.sp();
    let expected = *old;

    if kernel::warn_on!(expected.is_frozen() || new.is_frozen()) {
        return Err(Busy);
    }

    let result = if expected.is_present() && !expected.is_leaf(level) {
        // Removing or replacing a table: freeze first (see the module
        // invariants). A mirror root's table is not removed through the
        // external page table (its entries are), so this cannot fail.
        sptep
            .change_frozen(lock, expected, new, |replaced| {
                handle_changed_for_good(lock, sp, gfn, replaced, new, level);
                Ok::<(), Infallible>(())
            })
            .map_err(|e| match e {
                NotChanged::Raced(current) => current,
                NotChanged::Refused(never) => match never {},
            })
    } else if sp.is_mirror() || expected.is_mirrored() || new.is_mirrored() {
        // The external page table takes the change while the SPTE is
        // frozen; if it refuses, the SPTE gets its old value back.
        sptep
            .change_frozen(lock, expected, new, |replaced| {
                handle_changed(lock, sp, gfn, replaced, new, level)
            })
            .map_err(|e| match e {
                NotChanged::Raced(current) => current,
                NotChanged::Refused(_) => expected,
            })
    } else {
        sptep
            .cmpxchg(expected, new)
            .map(|replaced| handle_changed_for_good(lock, sp, gfn, replaced, new, level))
    };
    result.map_err(|current| {
        *old = current;
        Busy
    })
}

/// Set the SPTE under `walk` to `new` holding `mmu_lock` for write.
pub(crate) fn set_exclusive(lock: &MmuWrite<'_>, walk: &mut Walk<'_>, new: Spte) {
    let old = walk.old_spte();
    if kernel::warn_on!(old.is_frozen() || new.is_frozen()) {
        return;
    }
    let (gfn, level) = (walk.gfn(), walk.level());
    let replaced = walk.write(lock, new);
    handle_changed_for_good(lock, walk.sptep().sp(), gfn, replaced, new, level);
}

/// Leaves zapped by one walk under the write lock, per level, and what
/// accounting them entails, done once for the walk when it is dropped:
/// kvm.ko's page statistics and kvm_rtdp's zap counter.
pub(crate) struct LeafZaps<'a> {
    kvm: &'a Kvm,
    per_level: [u32; 3],
}

impl<'a> LeafZaps<'a> {
    pub(crate) fn new(kvm: &'a Kvm) -> Self {
        LeafZaps {
            kvm,
            per_level: [0; 3],
        }
    }
}

impl Drop for LeafZaps<'_> {
    fn drop(&mut self) {
        let mut total = 0u64;
        for (level, &count) in [Level::PG_4K, Level::PG_2M, Level::PG_1G]
            .iter()
            .zip(self.per_level.iter())
        {
            if count != 0 {
                // Cannot wrap: a walk zaps at most the leaves of one root.
                self.kvm.update_page_stats(*level, -(count as i32));
                total += u64::from(count);
            }
        }
        if total != 0 {
            self.kvm.state().add(Counter::LeafsZapped, total);
        }
    }
}

/// Zap the present leaf SPTE under `walk` holding `mmu_lock` for write,
/// accounted in `zaps`. A present leaf becoming non-present links and
/// unlinks nothing: its change entails the trace event and one leaf fewer
/// in the page statistics, no more (as `handle_changed` finds), so the
/// statistics wait in `zaps` for the end of the walk.
pub(crate) fn zap_leaf(lock: &MmuWrite<'_>, walk: &mut Walk<'_>, zaps: &mut LeafZaps<'_>) {
    let old = walk.old_spte();
    let level = walk.level();
    if kernel::warn_on!(!old.is_present() || !old.is_leaf(level) || level > Level::PG_1G) {
        return;
    }
    if old.is_mirrored() || walk.sptep().sp().is_mirror() {
        // The external page table has to take it: the general path.
        set_exclusive(lock, walk, Spte(NONPRESENT));
        lock.kvm().state().count(Counter::LeafsZapped);
        return;
    }
    let gfn = walk.gfn();
    kernel::warn_on!(gfn & (level.pages() - 1) != 0);
    let new = Spte(NONPRESENT);
    let replaced = walk.write(lock, new);
    let sp = walk.sptep().sp();
    if replaced.unlinked() {
        // Not a leaf after all: the general path tears its table down.
        kernel::warn_on!(true);
        handle_changed_for_good(lock, sp, gfn, replaced, new, level);
    } else {
        trace::spte_changed(sp.as_id(), gfn, level, replaced.old(), new);
        zaps.per_level[level.index()] += 1;
    }
}

/// Set the SPTE under `walk` to `new` with `mmu_lock` held in either mode.
pub(crate) fn set(lock: &impl MmuHeld, walk: &mut Walk<'_>, new: Spte) -> Result<(), Busy> {
    if let Some(write) = lock.exclusive() {
        set_exclusive(write, walk, new);
        return Ok(());
    }
    match lock.shared() {
        Some(read) => set_shared(read, walk, new),
        None => Err(Busy),
    }
}
