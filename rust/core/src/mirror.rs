// SPDX-License-Identifier: GPL-2.0

//! Mirrored SPTEs: changes that an external page table must take first.
//!
//! Under TDX the hardware walks a private page table (the Secure EPT) that
//! only the TDX module may write; KVM keeps a mirror of it in an ordinary
//! TDP table and forwards every change of a mirrored SPTE to the external
//! table through kvm.ko's vendor op (`set_external_spte` in Linux 7.3).
//! The external table may refuse a change: busy (another SEAMCALL holds
//! the entry, try again) or failed.
//!
//! A change of a mirrored SPTE is therefore made by [`set_mirrored`]:
//!
//! 1. freeze the SPTE (compare-and-exchange the expected value for
//!    [`FROZEN`](crate::spte::FROZEN), see [`crate::freeze`]); a thread that
//!    lost the race propagates nothing;
//! 2. propagate the change to the external table while it is frozen;
//! 3. store the new value if the external table took it, or the old one
//!    back if it refused.
//!
//! While the SPTE is frozen, every other writer fails and the fault path
//! retries, so the external table receives the changes of one SPTE one at
//! a time, in the order the mirror takes them, each with the value the
//! previous one left; and a table linked under a mirrored SPTE is reachable
//! in the mirror only once the external table has linked it too, so no
//! change of a child reaches the external table before its parent's.

#[cfg(loom)]
use loom::sync::atomic::AtomicU64;

#[cfg(not(loom))]
use core::sync::atomic::AtomicU64;

use crate::freeze::change_frozen;
pub use crate::freeze::NotChanged;
use crate::level::Level;
use crate::spte::Spte;

/// Why an external page table did not take a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The entry is in use by the external table's owner: the same change
    /// may succeed later (TDX: `TDX_OPERAND_BUSY`, `-EBUSY`).
    Busy,
    /// The change failed, with the errno kvm.ko's vendor op returned.
    Failed(i32),
}

/// An external page table, told of every change of a mirrored SPTE while
/// that SPTE is frozen.
pub trait External {
    /// Apply the change of the mirrored SPTE that maps `gfn` at `level`
    /// from `old` to `new`, or refuse it and change nothing.
    fn set(&self, gfn: u64, level: Level, old: Spte, new: Spte) -> Result<(), Refusal>;
}

/// Why [`set_mirrored`] did not make a change: [`NotChanged::Raced`] when
/// the SPTE no longer held the expected value or was frozen by somebody
/// else (nothing was propagated), [`NotChanged::Refused`] when the external
/// table refused it (the SPTE holds the expected value again, and the
/// external table is as it was).
pub type NotSet = NotChanged<Refusal>;

/// Change the mirrored SPTE in `cell`, which maps `gfn` at `level`, from
/// `old` to `new`: freeze it, propagate the change to `external`, then
/// store `new`, or restore `old` if `external` refused.
pub fn set_mirrored(
    cell: &AtomicU64,
    gfn: u64,
    level: Level,
    old: Spte,
    new: Spte,
    external: &impl External,
) -> Result<(), NotSet> {
    change_frozen(cell, old, new, || external.set(gfn, level, old, new))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::spte::{FROZEN, MMU_PRESENT, NONPRESENT};
    use core::cell::RefCell;
    use core::sync::atomic::Ordering;
    use std::vec::Vec;

    const LEAF: u64 = MMU_PRESENT | (0x1234 << 12) | 0x7;

    /// Records each change it is told of, with the mirror's value at that
    /// moment, and gives every one the same answer.
    struct Recorder<'a> {
        cell: &'a AtomicU64,
        answer: Result<(), Refusal>,
        seen: RefCell<Vec<(Spte, Spte, u64)>>,
    }

    impl External for Recorder<'_> {
        fn set(&self, _gfn: u64, _level: Level, old: Spte, new: Spte) -> Result<(), Refusal> {
            let mirror = self.cell.load(Ordering::Relaxed);
            self.seen.borrow_mut().push((old, new, mirror));
            self.answer
        }
    }

    fn recorder(cell: &AtomicU64, answer: Result<(), Refusal>) -> Recorder<'_> {
        Recorder {
            cell,
            answer,
            seen: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn a_taken_change_is_propagated_while_frozen_then_stored() {
        let cell = AtomicU64::new(NONPRESENT);
        let ext = recorder(&cell, Ok(()));
        let r = set_mirrored(&cell, 5, Level::PG_4K, Spte(NONPRESENT), Spte(LEAF), &ext);
        assert_eq!(r, Ok(()));
        assert_eq!(
            ext.seen.borrow().as_slice(),
            &[(Spte(NONPRESENT), Spte(LEAF), FROZEN)]
        );
        assert_eq!(cell.load(Ordering::Relaxed), LEAF);
    }

    #[test]
    fn a_refused_change_restores_the_old_value() {
        for refusal in [Refusal::Busy, Refusal::Failed(-5)] {
            let cell = AtomicU64::new(LEAF);
            let ext = recorder(&cell, Err(refusal));
            let r = set_mirrored(&cell, 5, Level::PG_4K, Spte(LEAF), Spte(NONPRESENT), &ext);
            assert_eq!(r, Err(NotSet::Refused(refusal)));
            assert_eq!(ext.seen.borrow().len(), 1);
            assert_eq!(cell.load(Ordering::Relaxed), LEAF);
        }
    }

    #[test]
    fn a_lost_race_propagates_nothing() {
        // A stale expectation, and an SPTE somebody else froze.
        for (held, expected) in [(NONPRESENT, LEAF), (FROZEN, LEAF), (FROZEN, FROZEN)] {
            let cell = AtomicU64::new(held);
            let ext = recorder(&cell, Ok(()));
            let r = set_mirrored(
                &cell,
                5,
                Level::PG_4K,
                Spte(expected),
                Spte(NONPRESENT),
                &ext,
            );
            assert_eq!(r, Err(NotSet::Raced(Spte(held))));
            assert!(ext.seen.borrow().is_empty());
            assert_eq!(cell.load(Ordering::Relaxed), held);
        }
    }
}

/// Loom models of [`set_mirrored`]: a mirror table of two levels (one link
/// in the root, one leaf in the table it links) with an external twin, two
/// threads faulting the leaf in or zapping it, and the external table
/// answering busy or failing on a chosen call. Run with
/// `RUSTFLAGS="--cfg loom" cargo test --release loom_tests`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::spte::{FROZEN, MMU_PRESENT, NONPRESENT};
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    const LINK: u64 = MMU_PRESENT | (0x10 << 12) | 0x7;
    const LEAF: u64 = MMU_PRESENT | (0x20 << 12) | 0x7;
    const GFN: u64 = 0;
    /// Attempts of a thread before it gives up (a vCPU would fault again).
    const ATTEMPTS: usize = 2;

    /// The mirror's two SPTEs, the external table's two entries, and which
    /// external call (counted from 1) refuses, how.
    struct Model {
        link: AtomicU64,
        leaf: AtomicU64,
        ext_link: AtomicU64,
        ext_leaf: AtomicU64,
        calls: AtomicUsize,
        refuse: Option<(usize, Refusal)>,
    }

    impl External for Model {
        fn set(&self, _gfn: u64, level: Level, old: Spte, new: Spte) -> Result<(), Refusal> {
            let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some((n, refusal)) = self.refuse {
                if n == call {
                    return Err(refusal);
                }
            }
            let entry = if level == Level::PG_2M {
                &self.ext_link
            } else {
                // Never a leaf under a link the external table lacks.
                assert_eq!(
                    self.ext_link.load(Ordering::Relaxed),
                    LINK,
                    "child before parent"
                );
                &self.ext_leaf
            };
            // One change at a time, each from the value the last one left.
            assert_eq!(
                entry.swap(new.0, Ordering::Relaxed),
                old.0,
                "lost or reordered change"
            );
            Ok(())
        }
    }

    impl Model {
        fn new(refuse: Option<(usize, Refusal)>) -> Self {
            Model {
                link: AtomicU64::new(NONPRESENT),
                leaf: AtomicU64::new(NONPRESENT),
                ext_link: AtomicU64::new(NONPRESENT),
                ext_leaf: AtomicU64::new(NONPRESENT),
                calls: AtomicUsize::new(0),
                refuse,
            }
        }

        /// Map the leaf as the fault path does: link the table if needed,
        /// then install the leaf. True once the leaf is mapped.
        fn fault(&self) -> bool {
            for _ in 0..ATTEMPTS {
                let link = Spte(self.link.load(Ordering::Acquire));
                if link.is_frozen() {
                    thread::yield_now();
                    continue;
                }
                if !link.is_present()
                    && set_mirrored(&self.link, GFN, Level::PG_2M, link, Spte(LINK), self).is_err()
                {
                    continue;
                }
                let leaf = Spte(self.leaf.load(Ordering::Acquire));
                if leaf.0 == LEAF {
                    return true;
                }
                if leaf.is_frozen() {
                    thread::yield_now();
                    continue;
                }
                if set_mirrored(&self.leaf, GFN, Level::PG_4K, leaf, Spte(LEAF), self).is_ok() {
                    return true;
                }
            }
            false
        }

        /// Zap the leaf if it is mapped. True once it is not.
        fn zap(&self) -> bool {
            for _ in 0..ATTEMPTS {
                if Spte(self.link.load(Ordering::Acquire)).0 != LINK {
                    return true;
                }
                let leaf = Spte(self.leaf.load(Ordering::Acquire));
                if leaf.is_frozen() {
                    thread::yield_now();
                    continue;
                }
                if !leaf.is_present() {
                    return true;
                }
                let r = set_mirrored(&self.leaf, GFN, Level::PG_4K, leaf, Spte(NONPRESENT), self);
                if r.is_ok() {
                    return true;
                }
            }
            false
        }

        /// Nothing is left frozen, and the external table equals the mirror.
        fn check(&self) {
            let link = self.link.load(Ordering::Relaxed);
            let leaf = self.leaf.load(Ordering::Relaxed);
            assert_ne!(link, FROZEN, "link left frozen");
            assert_ne!(leaf, FROZEN, "leaf left frozen");
            assert_eq!(self.ext_link.load(Ordering::Relaxed), link);
            assert_eq!(self.ext_leaf.load(Ordering::Relaxed), leaf);
        }
    }

    /// The second thread faults too, or zaps.
    #[derive(Clone, Copy, PartialEq)]
    enum Second {
        Fault,
        Zap,
    }

    fn run(refuse: Option<(usize, Refusal)>, second: Second) {
        loom::model(move || {
            let m = Arc::new(Model::new(refuse));
            let m2 = m.clone();
            let t = thread::spawn(move || match second {
                Second::Fault => m2.fault(),
                Second::Zap => m2.zap(),
            });
            let faulted = m.fault();
            let other = t.join().unwrap();
            m.check();
            // A change fails only because another thread made one, so
            // without refusals one of two faults maps the leaf.
            if refuse.is_none() && second == Second::Fault {
                assert!(faulted || other, "neither fault mapped the leaf");
            }
        });
    }

    #[test]
    fn two_faults() {
        run(None, Second::Fault);
    }

    #[test]
    fn a_fault_and_a_zap() {
        run(None, Second::Zap);
    }

    #[test]
    fn two_faults_with_the_external_table_busy() {
        for call in 1..=3 {
            run(Some((call, Refusal::Busy)), Second::Fault);
        }
    }

    #[test]
    fn a_fault_and_a_zap_with_an_external_failure() {
        for call in 1..=3 {
            run(Some((call, Refusal::Failed(-5))), Second::Zap);
        }
    }
}
