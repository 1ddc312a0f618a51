// SPDX-License-Identifier: GPL-2.0

//! Aging: telling the host's page reclaim whether the guest used a page
//! since it last asked, for the MMU notifier's `clear_young` and
//! `test_young`.
//!
//! # Lock rules
//!
//! Runs without `mmu_lock` (kvm.ko's x86 MMU notifiers age locklessly):
//! roots are found and walked in one RCU read-side section, which keeps
//! every root and table reached alive, and an SPTE is aged by one
//! compare-and-exchange. One that changed meanwhile is left alone: it is
//! being zapped or faulted in, so it is young anyway. Frozen SPTEs are not
//! present and never touched. No TLB flush: the notifiers that age do not
//! ask for one, and a stale TLB entry only makes a page look older.

use kernel::sync::rcu;

use crate::kvm::{last_on_path, trace, GfnRange, Kvm, RcuWalk, RootTypes, Sptep};
use crate::level::Level;
use crate::roots;
use crate::spte::{Masks, Spte};
use crate::stats::Counter;

/// What an aging pass does with the young SPTEs it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aging {
    /// Only report whether there is one (`test_young`).
    Test,
    /// Make each one old (`clear_young`).
    Clear,
}

/// What aging found at one SPTE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Not a young leaf.
    Old,
    /// A young leaf, left young (testing, or it changed meanwhile).
    Young,
    /// A young leaf, made old.
    Aged,
}

/// What a pass found so far.
#[derive(Default)]
struct Tally {
    /// A young leaf was found.
    young: bool,
    /// Leaves made old.
    aged: u64,
}

impl Tally {
    /// Add what aging found at one SPTE: true when the pass has its
    /// answer (a test found a young leaf).
    fn add(&mut self, found: Found, aging: Aging) -> bool {
        match found {
            Found::Old => false,
            Found::Young => {
                self.young = true;
                aging == Aging::Test
            }
            Found::Aged => {
                self.young = true;
                self.aged += 1;
                false
            }
        }
    }
}

/// Age the SPTE at `sptep`, which held `old` when read, maps `gfn` of
/// address space `as_id` and is at `sptep`'s level.
fn age_spte(
    sptep: Sptep<'_>,
    as_id: i32,
    gfn: u64,
    old: Spte,
    masks: &Masks,
    aging: Aging,
) -> Found {
    let level = sptep.level();
    // A mirrored leaf is not aged, as a TDX VM's mirror root is not: the
    // external page table keeps no Accessed bit to clear.
    if !(old.is_present() && old.is_leaf(level) && old.is_accessed(masks)) || old.is_mirrored() {
        return Found::Old;
    }
    if aging == Aging::Test {
        return Found::Young;
    }
    match old.aged(masks) {
        Some(new) => {
            if sptep.cmpxchg(old, new).is_ok() {
                trace::spte_changed(as_id, gfn, level, old, new);
                return Found::Aged;
            }
        }
        // Bits where the saved ones would go: kvm.ko warns and would lose
        // them; leave the SPTE young instead.
        None => {
            kernel::warn_on!(true);
        }
    }
    Found::Young
}

/// Whether any leaf SPTE mapping `range` in a valid root was accessed
/// since it was last aged; with [`Aging::Clear`], every such SPTE is made
/// old.
pub(crate) fn age(kvm: &Kvm, range: &GfnRange, aging: Aging) -> bool {
    let masks = kvm.state().masks;
    let state = kvm.state();
    let mut tally = Tally::default();
    // Most ranges are one page (page_idle and the PTE notifiers): its SPTE
    // is looked up, without a walk.
    let one_page = range.end() - range.start() == 1;
    let rcu = rcu::read_lock();
    let mut pos = None;
    while let Some(listed) = kvm.next_root_rcu(&rcu, pos) {
        pos = Some(listed);
        let root = listed.sp();
        // Mirror roots are never bound to kvm_rtdp (TDX VMs stay on C).
        if !roots::matches(root, RootTypes::DIRECT) || root.as_id() != range.as_id() {
            continue;
        }
        if one_page {
            let Some((sptep, old)) = last_on_path(kvm, &rcu, root, Level::PG_4K, range.start())
            else {
                continue;
            };
            let gfn = sptep.level().round_gfn(range.start());
            let found = age_spte(sptep, root.as_id(), gfn, old, &masks, aging);
            if tally.add(found, aging) {
                return true;
            }
            continue;
        }
        let mut walk = RcuWalk::new(kvm, &rcu, root, Level::PG_4K, range.start(), range.end());
        // 4 KiB leaves are looked at a load each: a range of a huge page's
        // size (a THP's clear_young) has a whole table of them, few young.
        let young_4k = |spte: Spte| spte.is_present() && spte.is_accessed(&masks);
        // Only leaves are aged: the links on the way down are not looked at.
        walk.descend(Level::PG_4K);
        while walk.valid() {
            let sptep = walk.sptep();
            let found = age_spte(
                sptep,
                root.as_id(),
                walk.gfn(),
                walk.old_spte(),
                &masks,
                aging,
            );
            if tally.add(found, aging) {
                return true;
            }
            if walk.seek(young_4k) {
                continue;
            }
            walk.next();
            walk.descend(Level::PG_4K);
        }
    }
    if tally.aged != 0 {
        state.add(Counter::SptesAged, tally.aged);
    }
    tally.young
}
