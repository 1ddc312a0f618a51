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

#![deny(unsafe_code)]

use kernel::sync::rcu;

use crate::kvm::{trace, GfnRange, Kvm, RcuWalk, RootTypes};
use crate::level::Level;
use crate::roots;
use crate::spte::Spte;
use crate::stats::Counter;

/// What an aging pass does with the young SPTEs it finds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aging {
    /// Only report whether there is one (`test_young`).
    Test,
    /// Make each one old (`clear_young`).
    Clear,
}

/// Whether any leaf SPTE mapping `range` in a valid root was accessed
/// since it was last aged; with [`Aging::Clear`], every such SPTE is made
/// old.
pub(crate) fn age(kvm: &Kvm, range: &GfnRange, aging: Aging) -> bool {
    let masks = kvm.state().masks;
    let state = kvm.state();
    let mut young = false;
    let mut aged = 0;
    let rcu = rcu::read_lock();
    let mut pos = None;
    while let Some(root) = kvm.next_root_rcu(&rcu, pos) {
        pos = Some(root);
        // Mirror roots are never bound to kvm_rtdp (TDX VMs stay on C).
        if !roots::matches(root, RootTypes::DIRECT) || root.as_id() != range.as_id() {
            continue;
        }
        let mut walk = RcuWalk::new(kvm, &rcu, root, Level::PG_4K, range.start(), range.end());
        // 4 KiB leaves are looked at a load each: a range of a huge page's
        // size (a THP's clear_young) has a whole table of them, few young.
        let young_4k = |spte: Spte| spte.is_present() && spte.is_accessed(&masks);
        // Only leaves are aged: the links on the way down are not looked
        // at (most ranges are one page: page_idle and the PTE notifiers).
        walk.descend(Level::PG_4K);
        while walk.valid() {
            let old = walk.old_spte();
            if old.is_present() && old.is_leaf(walk.level()) && old.is_accessed(&masks) {
                if aging == Aging::Test {
                    return true;
                }
                young = true;
                match old.aged(&masks) {
                    Some(new) => {
                        if walk.sptep().cmpxchg(old, new).is_ok() {
                            trace::spte_changed(root.as_id(), walk.gfn(), walk.level(), old, new);
                            aged += 1;
                        }
                    }
                    // Bits where the saved ones would go: kvm.ko warns
                    // and would lose them; leave the SPTE young instead.
                    None => {
                        kernel::warn_on!(true);
                    }
                }
            }
            if walk.seek(young_4k) {
                continue;
            }
            walk.next();
            walk.descend(Level::PG_4K);
        }
    }
    if aged != 0 {
        state.add(Counter::SptesAged, aged);
    }
    young
}
