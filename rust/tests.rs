// SPDX-License-Identifier: GPL-2.0

//! KUnit suites of kvm_rtdp; they run when the module is loaded.
//!
//! The host crate tests the same code exhaustively; these cases check that the
//! kernel build of it (target, flags, compiler) agrees on the values mmu.c
//! depends on.

use kernel::prelude::*;

#[kunit_tests(rtdp_mmio_gen)]
mod mmio_gen {
    use crate::mmio_gen::*;

    #[test]
    fn layout_matches_spte_h() {
        assert_eq!(SPTE_GEN_LOW_MASK, 0x3f8);
        assert_eq!(SPTE_GEN_HIGH_MASK, 0x7ff0_0000_0000_0000);
        assert_eq!(MMIO_GEN_MASK, (1 << 18) - 1);
    }

    #[test]
    fn boundaries_round_trip() {
        // Generation bit 6 is the last low bit, bit 7 the first high bit.
        assert_eq!(MmioGen::of_memslots(0x40).spte_bits(), 1 << 9);
        assert_eq!(MmioGen::of_memslots(0x80).spte_bits(), 1 << 52);
        assert_eq!(MmioGen::of_memslots(1 << 17).spte_bits(), 1 << 62);
        for gen in [0u64, 1, 0x7f, 0x80, 0x2_aaaa, 0x3_ffff] {
            let g = MmioGen::of_memslots(gen);
            assert_eq!(u64::from(MmioGen::of_spte(g.spte_bits()).get()), gen);
        }
    }

    #[test]
    fn update_in_progress_never_validates() {
        let spte = MmioGen::of_memslots(10).spte_bits() | 1 << 11;
        assert!(mmio_spte_is_current(10, spte));
        assert!(!mmio_spte_is_current(10 | GEN_UPDATE_IN_PROGRESS, spte));
        assert!(!mmio_spte_is_current(12, spte));
    }
}

#[kunit_tests(rtdp_level)]
mod level {
    use crate::level::*;

    #[test]
    fn sizes() {
        assert_eq!(Level::PG_4K.pages(), 1);
        assert_eq!(Level::PG_2M.pages(), 512);
        assert_eq!(Level::PG_1G.pages(), 512 * 512);
        assert_eq!(Level::new(0), None);
        assert_eq!(Level::new(6), None);
    }

    #[test]
    fn walk_arithmetic() {
        let gfn = 0x12_3456;
        assert_eq!(Level::PG_2M.round_gfn(gfn), 0x12_3400);
        assert_eq!(Level::PG_2M.spte_index(gfn), 0x11a);
        assert_eq!(Level::PG_4K.spte_index(gfn), 0x56);
        assert_eq!(Level::PG_2M.next_gfn(gfn), 0x12_3600);
    }
}

#[kunit_tests(rtdp_spte)]
mod spte {
    use crate::dirty_log::GfnMask;
    use crate::level::Level;
    use crate::spte::*;

    #[test]
    fn fixed_values_match_spte_h() {
        assert_eq!(FROZEN, 0x8000_0000_0000_01a0);
        assert_eq!(MMU_PRESENT, 1 << 11);
        assert_eq!(BASE_ADDR_MASK, 0x000f_ffff_ffff_f000);
    }

    #[test]
    fn frozen_is_not_present() {
        assert!(Spte(FROZEN).is_frozen());
        assert!(!Spte(FROZEN).is_present());
        assert!(!Spte(NONPRESENT).is_frozen());
    }

    #[test]
    fn leaf_levels() {
        let table = Spte(MMU_PRESENT | 0x1000 | 0x7);
        assert!(table.is_leaf(Level::PG_4K));
        assert!(!table.is_leaf(Level::PG_2M));
        assert!(Spte(table.0 | PAGE_SIZE).is_leaf(Level::PG_1G));
        assert_eq!(table.pfn(), 1);
    }

    #[test]
    fn npt_writable_invariants() {
        let m = Masks::NPT;
        let full = MMU_PRESENT | WRITABLE | m.mmu_writable | m.host_writable;
        assert!(Spte(full).writable_invariants_hold(&m));
        assert!(!Spte(MMU_PRESENT | WRITABLE).writable_invariants_hold(&m));
    }

    #[test]
    fn aging_and_write_protection() {
        let m = Masks::NPT;
        let young = Spte(MMU_PRESENT | 0x5000 | WRITABLE | m.mmu_writable | m.accessed | m.dirty);
        let old = young.aged(&m).unwrap();
        assert!(young.is_accessed(&m) && !old.is_accessed(&m));
        assert_eq!(old.0, young.0 & !m.accessed);
        let wp = young.write_protected(&m);
        assert!(!wp.is_writable() && !wp.is_mmu_writable(&m));
        assert_eq!(Spte::dirty_bit(&m, true), WRITABLE);
        assert_eq!(Spte::dirty_bit(&m, false), m.dirty);
    }

    #[test]
    fn dirty_log_mask() {
        let mut pending = GfnMask::new(0x1000, 0b1010);
        assert_eq!(pending.first(), 0x1001);
        assert!(!pending.take(0x1000));
        assert!(pending.take(0x1001) && pending.take(0x1003));
        assert!(!pending.take(0x1001));
        assert!(pending.is_empty());
    }
}

#[kunit_tests(rtdp_iter)]
mod iter {
    use crate::iter::{Tables, TdpIter};
    use crate::level::Level;
    use crate::spte::{Spte, MMU_PRESENT, NONPRESENT};
    use kernel::prelude::*;

    /// Three 512-entry tables in one vector; table `i` lives at pfn `i + 1`.
    struct Model(KVec<u64>);

    impl Tables for Model {
        type Table = usize;
        fn read(&self, table: usize, index: usize) -> u64 {
            self.0[table * 512 + index]
        }
        fn child(&self, spte: Spte) -> Option<usize> {
            (spte.pfn() as usize).checked_sub(1)
        }
    }

    fn link(table: usize) -> u64 {
        MMU_PRESENT | ((table as u64 + 1) << 12) | 0x7
    }

    #[test]
    fn walks_down_and_across() -> Result {
        let mut m = Model(KVec::from_elem(NONPRESENT, 3 * 512, GFP_KERNEL)?);
        m.0[0] = link(1);
        m.0[512] = link(2);
        m.0[2 * 512] = MMU_PRESENT | 0x5000;
        m.0[2 * 512 + 1] = MMU_PRESENT | 0x6000;
        let Some(mut it) = TdpIter::start(&m, 0, Level::PG_1G, Level::PG_4K, 0, 0) else {
            return Err(EINVAL);
        };
        let want = [(3u8, 0u64), (2, 0), (1, 0), (1, 1)];
        for (level, gfn) in want {
            assert!(it.valid());
            assert_eq!((it.level().get(), it.gfn()), (level, gfn));
            it.next(&m);
        }
        assert_eq!(it.gfn(), 2);
        assert_eq!(it.old_spte(), Spte(NONPRESENT));
        Ok(())
    }
}

#[kunit_tests(rtdp_mirror)]
mod mirror {
    use crate::level::Level;
    use crate::mirror::*;
    use crate::spte::{Spte, FROZEN, MMU_PRESENT, NONPRESENT};
    use core::sync::atomic::{AtomicU64, Ordering};

    const LEAF: u64 = MMU_PRESENT | (0x42 << 12) | 0x7;

    /// An external table of one entry that answers `answer` and records
    /// what the mirror held while it was told.
    struct One<'a> {
        mirror: &'a AtomicU64,
        entry: AtomicU64,
        seen: AtomicU64,
        answer: Result<(), Refusal>,
    }

    impl External for One<'_> {
        fn set(&self, _gfn: u64, _level: Level, old: Spte, new: Spte) -> Result<(), Refusal> {
            self.seen
                .store(self.mirror.load(Ordering::Relaxed), Ordering::Relaxed);
            self.answer?;
            assert_eq!(self.entry.swap(new.0, Ordering::Relaxed), old.0);
            Ok(())
        }
    }

    fn one(mirror: &AtomicU64, answer: Result<(), Refusal>) -> One<'_> {
        One {
            mirror,
            entry: AtomicU64::new(mirror.load(Ordering::Relaxed)),
            seen: AtomicU64::new(0),
            answer,
        }
    }

    #[test]
    fn propagated_while_frozen() {
        let cell = AtomicU64::new(NONPRESENT);
        let ext = one(&cell, Ok(()));
        let r = set_mirrored(&cell, 1, Level::PG_4K, Spte(NONPRESENT), Spte(LEAF), &ext);
        assert_eq!(r, Ok(()));
        assert_eq!(ext.seen.load(Ordering::Relaxed), FROZEN);
        assert_eq!(ext.entry.load(Ordering::Relaxed), LEAF);
        assert_eq!(cell.load(Ordering::Relaxed), LEAF);
    }

    #[test]
    fn refused_change_is_undone() {
        for refusal in [Refusal::Busy, Refusal::Failed(-5)] {
            let cell = AtomicU64::new(LEAF);
            let ext = one(&cell, Err(refusal));
            let r = set_mirrored(&cell, 1, Level::PG_4K, Spte(LEAF), Spte(NONPRESENT), &ext);
            assert_eq!(r, Err(NotSet::Refused(refusal)));
            assert_eq!(ext.entry.load(Ordering::Relaxed), LEAF);
            assert_eq!(cell.load(Ordering::Relaxed), LEAF);
        }
    }
}

#[kunit_tests(rtdp_freeze)]
mod freeze {
    use crate::freeze::*;
    use crate::spte::{Spte, FROZEN, MMU_PRESENT, NONPRESENT};
    use core::sync::atomic::{AtomicU64, Ordering};

    const LEAF: u64 = MMU_PRESENT | (0x42 << 12) | 0x7;

    #[test]
    fn freeze_finish() {
        let cell = AtomicU64::new(LEAF);
        let frozen = freeze(&cell, Spte(LEAF)).unwrap();
        assert_eq!(cell.load(Ordering::Relaxed), FROZEN);
        // Nobody else can freeze or exchange it meanwhile.
        assert!(freeze(&cell, Spte(LEAF)).is_err());
        assert!(cell
            .compare_exchange(LEAF, NONPRESENT, Ordering::SeqCst, Ordering::Relaxed)
            .is_err());
        frozen.finish(Spte(NONPRESENT));
        assert_eq!(cell.load(Ordering::Relaxed), NONPRESENT);
    }

    #[test]
    fn abandoned_freeze_restores() {
        let cell = AtomicU64::new(LEAF);
        drop(freeze(&cell, Spte(LEAF)).unwrap());
        assert_eq!(cell.load(Ordering::Relaxed), LEAF);
    }

    #[test]
    fn removed_entries_stay_frozen() {
        let cell = AtomicU64::new(LEAF);
        assert_eq!(freeze_removed(&cell, || {}), Spte(LEAF));
        assert_eq!(cell.load(Ordering::Relaxed), FROZEN);
        assert!(freeze(&cell, Spte(FROZEN)).is_err());
    }
}
