// SPDX-License-Identifier: GPL-2.0

//! SPTE freezing.
//!
//! A change whose side effects must be complete before anybody else may act
//! on the SPTE (tearing down the table a non-leaf SPTE points to, or
//! propagating a change to an external page table) is made in three steps:
//! compare-and-exchange the expected value for [`FROZEN`], do the side
//! effects, then store the final value. In between, the SPTE is not present
//! for the hardware walker and for the lockless fast page fault, and every
//! other writer fails: compare-and-exchange writers expect a value that is
//! not [`FROZEN`], and the fault path retries the fault when it reads it.
//!
//! The token [`Frozen`] is the right to write the frozen SPTE: nobody but
//! its holder stores to the SPTE until the token is consumed, by
//! [`Frozen::finish`] with the final value or, when dropped, by restoring
//! the value it replaced.
//!
//! Entries of a table that is being removed are frozen for good with
//! [`freeze_removed`]: the table is freed after a grace period and nobody
//! writes them again.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, Ordering};

use crate::spte::{Spte, FROZEN};

/// The right to write an SPTE that this thread froze.
///
/// # Invariants
///
/// `cell` holds [`FROZEN`], stored by [`freeze`] for this token in place of
/// `old`, and nothing else stores to `cell` while the token lives.
#[must_use = "a frozen SPTE stays frozen until finished or dropped"]
pub struct Frozen<'a> {
    cell: &'a AtomicU64,
    old: Spte,
}

/// Freeze the SPTE in `cell` if it still holds `old`.
///
/// Fails with the current value when the SPTE changed since `old` was read,
/// or when `old` is itself [`FROZEN`]: somebody else's freeze is never
/// taken over, the caller retries once it is finished.
pub fn freeze(cell: &AtomicU64, old: Spte) -> Result<Frozen<'_>, Spte> {
    if old.is_frozen() {
        return Err(old);
    }
    match cell.compare_exchange(old.0, FROZEN, Ordering::SeqCst, Ordering::Acquire) {
        // INVARIANT: `cell` held `old` and now holds FROZEN; every other
        // writer either expects a non-frozen value or waits for the token's
        // end (`freeze_removed`).
        Ok(_) => Ok(Frozen { cell, old }),
        Err(current) => Err(Spte(current)),
    }
}

impl Frozen<'_> {
    /// The value the SPTE held before it was frozen.
    pub fn old(&self) -> Spte {
        self.old
    }

    /// Store the final value, ending the freeze. `new` must not be
    /// [`FROZEN`]: a frozen SPTE always has an owner.
    pub fn finish(self, new: Spte) {
        assert!(!new.is_frozen(), "the final value of a freeze is FROZEN");
        let cell = self.cell;
        core::mem::forget(self);
        cell.store(new.0, Ordering::Release);
    }
}

impl Drop for Frozen<'_> {
    /// Abandon the change: the SPTE gets its old value back.
    fn drop(&mut self) {
        self.cell.store(self.old.0, Ordering::Release);
    }
}

/// Why [`change_frozen`] did not make a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotChanged<E> {
    /// The SPTE no longer held the expected value, or was frozen by
    /// somebody else: nothing ran. The value read instead.
    Raced(Spte),
    /// What ran while the SPTE was frozen refused the change: the SPTE
    /// holds the expected value again.
    Refused(E),
}

/// Change the SPTE in `cell` from `old` to `new` in three steps: freeze it
/// if it still holds `old`, run `while_frozen`, then store `new` if that
/// succeeded or `old` back if it failed. `while_frozen` runs while no other
/// writer can touch the SPTE and the hardware walker does not see it as
/// present; a failure must leave behind nothing that depends on `new`.
pub fn change_frozen<E>(
    cell: &AtomicU64,
    old: Spte,
    new: Spte,
    while_frozen: impl FnOnce() -> Result<(), E>,
) -> Result<(), NotChanged<E>> {
    let frozen = freeze(cell, old).map_err(NotChanged::Raced)?;
    match while_frozen() {
        Ok(()) => {
            frozen.finish(new);
            Ok(())
        }
        // Dropping the token stores `old` back.
        Err(e) => Err(NotChanged::Refused(e)),
    }
}

/// Freeze an entry of a table that was removed from the tree, returning the
/// value it held. An entry frozen by another thread is waited for (`relax`
/// between attempts): its freezer finishes and the entry is taken then.
pub fn freeze_removed(cell: &AtomicU64, mut relax: impl FnMut()) -> Spte {
    loop {
        let old = Spte(cell.swap(FROZEN, Ordering::SeqCst));
        if !old.is_frozen() {
            return old;
        }
        relax();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::spte::{MMU_PRESENT, NONPRESENT};
    use core::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::thread;
    use std::vec::Vec;

    const LEAF: u64 = MMU_PRESENT | (0x1234 << 12) | 0x7;

    #[test]
    fn freeze_then_finish_stores_the_final_value() {
        let cell = AtomicU64::new(LEAF);
        let frozen = freeze(&cell, Spte(LEAF)).unwrap();
        assert_eq!(cell.load(Ordering::Relaxed), FROZEN);
        assert_eq!(frozen.old(), Spte(LEAF));
        frozen.finish(Spte(NONPRESENT));
        assert_eq!(cell.load(Ordering::Relaxed), NONPRESENT);
    }

    #[test]
    fn a_stale_expected_value_does_not_freeze() {
        let cell = AtomicU64::new(NONPRESENT);
        assert_eq!(freeze(&cell, Spte(LEAF)).err(), Some(Spte(NONPRESENT)));
        assert_eq!(cell.load(Ordering::Relaxed), NONPRESENT);
    }

    #[test]
    fn a_frozen_spte_cannot_be_frozen_again() {
        let cell = AtomicU64::new(LEAF);
        let frozen = freeze(&cell, Spte(LEAF)).unwrap();
        // Both a stale expectation and an expectation of FROZEN fail.
        assert_eq!(freeze(&cell, Spte(LEAF)).err(), Some(Spte(FROZEN)));
        assert_eq!(freeze(&cell, Spte(FROZEN)).err(), Some(Spte(FROZEN)));
        frozen.finish(Spte(NONPRESENT));
    }

    #[test]
    fn dropping_the_token_restores_the_old_value() {
        let cell = AtomicU64::new(LEAF);
        drop(freeze(&cell, Spte(LEAF)).unwrap());
        assert_eq!(cell.load(Ordering::Relaxed), LEAF);
    }

    #[test]
    #[should_panic]
    fn finishing_with_frozen_is_refused() {
        let cell = AtomicU64::new(LEAF);
        freeze(&cell, Spte(LEAF)).unwrap().finish(Spte(FROZEN));
    }

    #[test]
    fn change_frozen_runs_its_step_while_frozen() {
        let cell = AtomicU64::new(LEAF);
        let mut seen = None;
        let r: Result<(), NotChanged<()>> =
            change_frozen(&cell, Spte(LEAF), Spte(NONPRESENT), || {
                seen = Some(cell.load(Ordering::Relaxed));
                Ok(())
            });
        assert_eq!(r, Ok(()));
        assert_eq!(seen, Some(FROZEN));
        assert_eq!(cell.load(Ordering::Relaxed), NONPRESENT);
    }

    #[test]
    fn change_frozen_restores_the_old_value_on_failure() {
        let cell = AtomicU64::new(LEAF);
        let r = change_frozen(&cell, Spte(LEAF), Spte(NONPRESENT), || Err(-16));
        assert_eq!(r, Err(NotChanged::Refused(-16)));
        assert_eq!(cell.load(Ordering::Relaxed), LEAF);
    }

    #[test]
    fn change_frozen_runs_nothing_after_a_lost_race() {
        let cell = AtomicU64::new(NONPRESENT);
        let mut ran = false;
        let r: Result<(), NotChanged<()>> =
            change_frozen(&cell, Spte(LEAF), Spte(FROZEN - 1), || {
                ran = true;
                Ok(())
            });
        assert_eq!(r, Err(NotChanged::Raced(Spte(NONPRESENT))));
        assert!(!ran);
    }

    #[test]
    fn freeze_removed_takes_a_plain_entry_at_once() {
        let cell = AtomicU64::new(LEAF);
        let mut relaxed = 0;
        assert_eq!(freeze_removed(&cell, || relaxed += 1), Spte(LEAF));
        assert_eq!(relaxed, 0);
        assert_eq!(cell.load(Ordering::Relaxed), FROZEN);
    }

    /// Threads race to move a counter SPTE forward by freezing it; the
    /// remover takes the entry from under them. Every increment is made by
    /// exactly one freezer (no update lost, none done twice), and the
    /// remover gets the value of a finished freeze, never FROZEN.
    /// Ten rounds: one round misses a lost update now and then (2 runs in
    /// 40, with the removal's exchange made a load and a store).
    #[test]
    fn racing_freezers_and_a_remover() {
        for _ in 0..10 {
            race_freezers_and_a_remover();
        }
    }

    fn race_freezers_and_a_remover() {
        const THREADS: u64 = 4;
        // The remover goes in once this many changes were made, while the
        // freezers go on: they stop only when they see the entry removed.
        const BEFORE_REMOVAL: u64 = 1000;
        let cell = Arc::new(AtomicU64::new(MMU_PRESENT));
        let done = Arc::new(AtomicU64::new(0));
        let removed = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let (cell, done, removed) = (cell.clone(), done.clone(), removed.clone());
                thread::spawn(move || {
                    let mut after_removal = 0u64;
                    loop {
                        // Once the removal is seen, one last try, which
                        // must fail: nothing changes a removed entry.
                        let gone = removed.load(Ordering::Acquire);
                        let old = Spte(cell.load(Ordering::Acquire));
                        if !old.is_frozen() {
                            if let Ok(frozen) = freeze(&cell, old) {
                                let next = Spte(frozen.old().0 + (1 << 12));
                                frozen.finish(next);
                                done.fetch_add(1, Ordering::AcqRel);
                                after_removal += u64::from(gone);
                            }
                        } else if !gone {
                            thread::yield_now();
                        }
                        if gone {
                            return after_removal;
                        }
                    }
                })
            })
            .collect();
        // (A freezer that panicked must not leave this waiting forever.)
        while done.load(Ordering::Acquire) < BEFORE_REMOVAL
            && !workers.iter().any(|w| w.is_finished())
        {
            thread::yield_now();
        }
        // A freezer holds the entry for a few instructions: a removal that
        // waits a million yields found a frozen entry that nobody holds.
        let mut waits = 0u32;
        let last = freeze_removed(&cell, || {
            waits += 1;
            assert!(waits < 1_000_000, "removal waits on an entry nobody froze");
            thread::yield_now();
        });
        removed.store(true, Ordering::Release);
        let late: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let total = done.load(Ordering::Acquire);
        // Every change the freezers made came before the removal, which
        // took the last of them; none after.
        assert!(total >= BEFORE_REMOVAL);
        assert_eq!(late, 0);
        assert_eq!(last.0, MMU_PRESENT + (total << 12));
        assert_eq!(cell.load(Ordering::Acquire), FROZEN);
        // Once removed, the entry can no longer be frozen by anybody.
        assert!(freeze(&cell, last).is_err());
    }
}
