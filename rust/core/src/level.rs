// SPDX-License-Identifier: GPL-2.0

//! Paging levels of the TDP page tables and the gfn arithmetic that walks them.
//!
//! Level 1 maps 4 KiB pages, level 2 2 MiB, level 3 1 GiB; levels 4 and 5 are
//! the roots of 4- and 5-level tables and never map memory directly. Every
//! table holds 512 SPTEs, indexed by 9 bits of the gfn per level.

/// log2 of the SPTEs per page-table page.
pub const SPTE_LEVEL_BITS: u32 = 9;
/// SPTEs per page-table page.
pub const SPTE_ENT_PER_PAGE: usize = 1 << SPTE_LEVEL_BITS;

/// A paging level in `1..=5`.
///
/// An enum rather than a checked integer: the compiler knows every value is
/// in `1..=5`, so the arithmetic below (`get() - 1`, shifts by
/// `gfn_shift()`) and indexing by level need no overflow or bounds check
/// at run time, in kernels built with `CONFIG_RUST_OVERFLOW_CHECKS` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// 4 KiB pages.
    L1 = 1,
    /// 2 MiB pages.
    L2 = 2,
    /// 1 GiB pages.
    L3 = 3,
    /// Root of 4-level tables.
    L4 = 4,
    /// Root of 5-level tables.
    L5 = 5,
}

impl Level {
    /// The 4 KiB level.
    pub const PG_4K: Level = Level::L1;
    /// The 2 MiB level.
    pub const PG_2M: Level = Level::L2;
    /// The 1 GiB level, the largest that maps memory.
    pub const PG_1G: Level = Level::L3;
    /// Lowest level.
    pub const MIN: Level = Level::PG_4K;
    /// Highest level (5-level paging).
    pub const MAX: Level = Level::L5;

    /// The level numbered `n` as KVM numbers them (`PG_LEVEL_4K == 1`), or
    /// `None` when there is no such level.
    #[inline]
    pub const fn new(n: u8) -> Option<Level> {
        match n {
            1 => Some(Level::L1),
            2 => Some(Level::L2),
            3 => Some(Level::L3),
            4 => Some(Level::L4),
            5 => Some(Level::L5),
            _ => None,
        }
    }

    /// The level's number, 1 for 4 KiB.
    #[inline]
    pub const fn get(self) -> u8 {
        self as u8
    }

    /// The level's number minus one: its slot in an array of
    /// `Level::MAX.get()` entries, one per level.
    #[inline]
    pub const fn index(self) -> usize {
        // Cannot wrap: `self as u8` is at least 1.
        (self as u8 - 1) as usize
    }

    /// The level below, or `None` at 4 KiB.
    #[inline]
    pub const fn lower(self) -> Option<Level> {
        match self {
            Level::L1 => None,
            Level::L2 => Some(Level::L1),
            Level::L3 => Some(Level::L2),
            Level::L4 => Some(Level::L3),
            Level::L5 => Some(Level::L4),
        }
    }

    /// The level above, or `None` at the highest level.
    #[inline]
    pub const fn upper(self) -> Option<Level> {
        match self {
            Level::L1 => Some(Level::L2),
            Level::L2 => Some(Level::L3),
            Level::L3 => Some(Level::L4),
            Level::L4 => Some(Level::L5),
            Level::L5 => None,
        }
    }

    /// Bits of a gfn below this level's index: one SPTE here covers
    /// `1 << gfn_shift()` 4 KiB pages (`KVM_HPAGE_GFN_SHIFT`).
    #[inline]
    pub const fn gfn_shift(self) -> u32 {
        self.index() as u32 * SPTE_LEVEL_BITS
    }

    /// 4 KiB pages mapped by one SPTE at this level (`KVM_PAGES_PER_HPAGE`).
    #[inline]
    pub const fn pages(self) -> u64 {
        1 << self.gfn_shift()
    }

    /// `gfn` rounded down to the first gfn the SPTE covering it at this level
    /// maps.
    #[inline]
    pub const fn round_gfn(self, gfn: u64) -> u64 {
        gfn & !(self.pages() - 1)
    }

    /// Index of the SPTE for `gfn` in the table at this level.
    #[inline]
    pub const fn spte_index(self, gfn: u64) -> usize {
        ((gfn >> self.gfn_shift()) as usize) & (SPTE_ENT_PER_PAGE - 1)
    }

    /// The first gfn after the region the SPTE covering `gfn` maps.
    #[inline]
    pub const fn next_gfn(self, gfn: u64) -> u64 {
        self.round_gfn(gfn).wrapping_add(self.pages())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_bounded() {
        assert_eq!(Level::new(0), None);
        assert_eq!(Level::new(6), None);
        assert_eq!(Level::PG_4K.lower(), None);
        assert_eq!(Level::MAX.upper(), None);
        assert_eq!(Level::PG_2M.lower(), Some(Level::PG_4K));
        assert_eq!(Level::PG_1G.upper(), Level::new(4));
    }

    #[test]
    fn sizes_match_x86() {
        assert_eq!(Level::PG_4K.pages(), 1);
        assert_eq!(Level::PG_2M.pages() * 4096, 2 << 20);
        assert_eq!(Level::PG_1G.pages() * 4096, 1 << 30);
        assert_eq!(Level::MAX.gfn_shift(), 36);
    }

    /// The index at each level, concatenated from the top, is the gfn again:
    /// walking the tables by `spte_index` visits every gfn exactly once.
    #[test]
    fn indices_reassemble_the_gfn() {
        let mut gfn: u64 = 0x1234_5678_9;
        for _ in 0..10_000 {
            gfn = gfn.wrapping_mul(6364136223846793005).wrapping_add(1) >> 12;
            let mut rebuilt = 0u64;
            let mut level = Some(Level::MAX);
            while let Some(l) = level {
                rebuilt = (rebuilt << SPTE_LEVEL_BITS) | l.spte_index(gfn) as u64;
                level = l.lower();
            }
            assert_eq!(rebuilt, gfn & ((1 << (5 * SPTE_LEVEL_BITS)) - 1));
        }
    }

    #[test]
    fn rounding_and_next() {
        let gfn = 0x12_3456;
        assert_eq!(Level::PG_4K.round_gfn(gfn), gfn);
        assert_eq!(Level::PG_2M.round_gfn(gfn), 0x12_3400);
        assert_eq!(Level::PG_1G.round_gfn(gfn), 0x10_0000);
        assert_eq!(Level::PG_2M.next_gfn(gfn), 0x12_3600);
        assert_eq!(Level::PG_2M.spte_index(gfn), 0x11a);
        for l in 1..=5 {
            let l = Level::new(l).unwrap();
            let r = l.round_gfn(gfn);
            assert!(r <= gfn && gfn < l.next_gfn(gfn));
            assert_eq!(l.next_gfn(gfn) - r, l.pages());
        }
    }
}
