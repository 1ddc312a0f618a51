// SPDX-License-Identifier: GPL-2.0

//! The TDP iterator: a pre-order walk over the SPTEs of one root that cover
//! a range of gfns, as `tdp_iter.c` walks them.
//!
//! The walk visits each SPTE covering `[start, ..)` from the root down to
//! `min_level`, descending into present non-leaf SPTEs, in gfn order; the
//! caller stops it at its end gfn. How tables are reached is the [`Tables`]
//! implementation's business: in the kernel an RCU-protected read of a page
//! that may be freed after a grace period, on the host a model page table.
//!
//! After the caller drops `mmu_lock` or leaves the RCU read-side section
//! ([`TdpIter::set_yielded`]), any table on the path may have been freed, so
//! the next step re-walks from the root to the gfn it had reached instead of
//! touching the path.

use crate::level::{Level, SPTE_LEVEL_BITS};
use crate::spte::Spte;

/// Access to the page tables the iterator walks.
pub trait Tables {
    /// A page-table page.
    type Table: Copy;

    /// Read SPTE `index` of `table` once.
    fn read(&self, table: Self::Table, index: usize) -> u64;

    /// The table that the present, non-leaf `spte` points to; `None` if
    /// it points to none, which the walk then does not enter (as
    /// `tdp_iter.c` when `spte_to_child_pt()` finds no table).
    fn child(&self, spte: Spte) -> Option<Self::Table>;
}

/// Where a walk of the single gfn `gfn` under `root` (a table at
/// `root_level`), down to `min_level`, ends: the table, index, level and
/// value of the last SPTE it visits, the one that links no table it would
/// enter. The same as the last position of a [`TdpIter`] over
/// `[gfn, gfn + 1)` without its bookkeeping, for the lockless lookups
/// (the fast page fault's last SPTE, aging one page) that look at nothing
/// else on the way. `None` for a `min_level` above the root's.
#[inline]
pub fn last_on_path<T: Tables>(
    tables: &T,
    root: T::Table,
    root_level: Level,
    min_level: Level,
    gfn: u64,
) -> Option<(T::Table, usize, Level, Spte)> {
    if min_level > root_level {
        return None;
    }
    let mut table = root;
    let mut level = root_level;
    loop {
        let index = level.spte_index(gfn);
        let spte = Spte(tables.read(table, index));
        if level <= min_level || !spte.is_present() || spte.is_leaf(level) {
            return Some((table, index, level, spte));
        }
        let (Some(lower), Some(child)) = (level.lower(), tables.child(spte)) else {
            return Some((table, index, level, spte));
        };
        table = child;
        level = lower;
    }
}

/// Position and state of a walk.
///
/// # Invariants
///
/// - `min_level <= level <= root_level`, and `path[l - 1]` for every level
///   `l` in `level..=root_level` is the table at that level on the way to
///   `gfn`; entries below `level` are stale and never read.
/// - `gfn` is rounded to `level` and `old_spte` is what was read at `gfn` in
///   `path[level - 1]` when the iterator last moved.
pub struct TdpIter<T: Tables> {
    path: [T::Table; Level::MAX.get() as usize],
    next_last_level_gfn: u64,
    yielded_gfn: u64,
    gfn: u64,
    gfn_bits: u64,
    root_level: Level,
    min_level: Level,
    level: Level,
    old_spte: u64,
    valid: bool,
    yielded: bool,
}

impl<T: Tables> TdpIter<T> {
    /// Start a walk of the tree under `root` (a table at `root_level`) at
    /// `start`, going no lower than `min_level`. `gfn_bits` are ORed into
    /// every gfn used to index a table (the shared bit of mirrored roots).
    ///
    /// `None` when the arguments cannot describe a walk: `min_level` above
    /// the root, or `start` not below `gfn_bits`.
    #[inline]
    pub fn start(
        tables: &T,
        root: T::Table,
        root_level: Level,
        min_level: Level,
        start: u64,
        gfn_bits: u64,
    ) -> Option<Self> {
        if min_level > root_level || (gfn_bits != 0 && start >= gfn_bits) {
            return None;
        }
        // INVARIANT: only the root's slot is meaningful until the walk
        // descends; the others hold the root as a placeholder.
        let mut iter = Self {
            path: [root; Level::MAX.get() as usize],
            next_last_level_gfn: start,
            yielded_gfn: start,
            gfn: 0,
            gfn_bits,
            root_level,
            min_level,
            level: root_level,
            old_spte: 0,
            valid: false,
            yielded: false,
        };
        iter.restart(tables);
        Some(iter)
    }

    /// A walk that is over before it starts: for a caller that has no walk
    /// to make of its arguments ([`Self::start`] refused them) and reported
    /// it. Not [`Self::valid`], so a walk loop, which steps only a valid
    /// iterator, ends before it reads anything.
    pub fn empty(root: T::Table, root_level: Level) -> Self {
        // INVARIANT: as after the last step of a walk, nothing is read.
        Self {
            path: [root; Level::MAX.get() as usize],
            next_last_level_gfn: 0,
            yielded_gfn: 0,
            gfn: 0,
            gfn_bits: 0,
            root_level,
            min_level: root_level,
            level: root_level,
            old_spte: 0,
            valid: false,
            yielded: false,
        }
    }

    /// Whether the iterator is on an SPTE; false once the walk has left the
    /// root's range.
    #[inline]
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The first gfn the current SPTE maps.
    #[inline]
    pub fn gfn(&self) -> u64 {
        self.gfn
    }

    /// The level of the current SPTE.
    #[inline]
    pub fn level(&self) -> Level {
        self.level
    }

    /// The current SPTE as read when the iterator moved to it.
    #[inline]
    pub fn old_spte(&self) -> Spte {
        Spte(self.old_spte)
    }

    /// Record a newer value of the current SPTE, e.g. after a failed
    /// cmpxchg returned it, so that the next step sees what is there.
    #[inline]
    pub fn set_old_spte(&mut self, spte: Spte) {
        self.old_spte = spte.0;
    }

    /// The table holding the current SPTE and its index there.
    #[inline]
    pub fn position(&self) -> (T::Table, usize) {
        (self.table(self.level), self.index())
    }

    /// The gfn the walk resumes at after a yield; the caller uses it to
    /// avoid yielding twice without progress (`tdp_mmu_iter_need_resched`).
    #[inline]
    pub fn yielded_gfn(&self) -> u64 {
        self.yielded_gfn
    }

    /// The next walk position at the lowest level, where a restart resumes.
    #[inline]
    pub fn next_last_level_gfn(&self) -> u64 {
        self.next_last_level_gfn
    }

    /// The caller dropped the lock or the RCU read-side section: the next
    /// step re-walks from the root.
    #[inline]
    pub fn set_yielded(&mut self) {
        self.yielded = true;
    }

    /// Walk again from the root to `next_last_level_gfn`.
    #[inline]
    pub fn restart(&mut self, tables: &T) {
        self.yielded = false;
        self.yielded_gfn = self.next_last_level_gfn;
        self.level = self.root_level;
        self.gfn = self.level.round_gfn(self.next_last_level_gfn);
        self.refresh(tables);
        self.valid = true;
    }

    /// Move to the next SPTE in pre-order.
    #[inline]
    pub fn next(&mut self, tables: &T) {
        if self.yielded {
            self.restart(tables);
            return;
        }
        if self.step_down(tables) {
            return;
        }
        loop {
            if self.step_side(tables) {
                return;
            }
            if !self.step_up(tables) {
                break;
            }
        }
        self.valid = false;
    }

    /// [`Self::next`] for a caller that stops at `end`: when the current
    /// SPTE is the last of the range, the walk only enters the table it
    /// links (read again, as by [`Self::next`]) or ends, without stepping
    /// past `end` first. A walk of one gfn ends where its entry is.
    #[inline]
    pub fn next_until(&mut self, tables: &T, end: u64) {
        if !self.yielded && self.level.next_gfn(self.gfn) >= end {
            if !self.step_down(tables) {
                self.valid = false;
            }
            return;
        }
        self.next(tables);
    }

    /// Step down through present links until the walk is at `stop` (or
    /// its lowest level, if that is higher) or on an SPTE that links no
    /// table: where [`Self::next`] would step down, each time, without the
    /// caller looking at the links on the way. A single-gfn operation (a
    /// fault, aging one page) reaches its entry in one call instead of a
    /// step per level. Like [`Self::next`], it reads the current SPTE again
    /// first. Does nothing after a yield or at the end of the walk.
    #[inline]
    pub fn descend(&mut self, tables: &T, stop: Level) {
        if !self.valid || self.yielded {
            return;
        }
        let mut spte = Spte(tables.read(self.table(self.level), self.index()));
        loop {
            self.old_spte = spte.0;
            if self.level <= stop || self.level <= self.min_level {
                return;
            }
            let Some(lower) = self.level.lower() else {
                return;
            };
            if !spte.is_present() || spte.is_leaf(self.level) {
                return;
            }
            let Some(child) = tables.child(spte) else {
                return;
            };
            // INVARIANT: as in `step_down`.
            self.path[lower.index()] = child;
            self.level = lower;
            self.gfn = lower.round_gfn(self.next_last_level_gfn);
            spte = Spte(tables.read(child, self.index()));
        }
    }

    /// At the walk's lowest level, move sideways to the first later SPTE
    /// of the current table below `end` that `want` accepts, reading each
    /// SPTE on the way once: true when there is one, and the iterator is on
    /// it. Otherwise false, and the iterator is on the last SPTE it read
    /// (or still where it was), so that [`Self::next`] goes on after them.
    ///
    /// A walk that seeks visits the SPTEs that stepping would, minus those
    /// `want` rejects: at the lowest level the walk descends into nothing.
    /// Above it, or after a yield, it does nothing and returns false.
    #[inline]
    pub fn seek(&mut self, tables: &T, end: u64, mut want: impl FnMut(Spte) -> bool) -> bool {
        if self.level != self.min_level || self.yielded {
            return false;
        }
        let table = self.table(self.level);
        let step = self.level.pages();
        let mut index = self.index();
        let mut gfn = self.gfn;
        let mut spte = self.old_spte;
        let mut found = false;
        while index < (1 << SPTE_LEVEL_BITS) - 1 && gfn.saturating_add(step) < end {
            index += 1;
            gfn += step;
            spte = tables.read(table, index);
            if want(Spte(spte)) {
                found = true;
                break;
            }
        }
        // INVARIANT: `gfn` is the SPTE at `index` of the same table, rounded
        // to the level, and `spte` what was read there.
        self.gfn = gfn;
        self.next_last_level_gfn = gfn;
        self.old_spte = spte;
        found
    }

    #[inline]
    fn table(&self, level: Level) -> T::Table {
        self.path[level.index()]
    }

    #[inline]
    fn index(&self) -> usize {
        self.level.spte_index(self.gfn | self.gfn_bits)
    }

    #[inline]
    fn refresh(&mut self, tables: &T) {
        self.old_spte = tables.read(self.table(self.level), self.index());
    }

    #[inline]
    fn step_down(&mut self, tables: &T) -> bool {
        let Some(lower) = self.level.lower() else {
            return false;
        };
        if self.level == self.min_level {
            return false;
        }
        // Read again: the SPTE may have changed since the caller last
        // looked, e.g. into a table it just linked.
        let spte = Spte(tables.read(self.table(self.level), self.index()));
        self.old_spte = spte.0;
        if !spte.is_present() || spte.is_leaf(self.level) {
            return false;
        }
        let Some(child) = tables.child(spte) else {
            return false;
        };
        // INVARIANT: the table for `lower` is set before `level` moves to it.
        self.path[lower.index()] = child;
        self.level = lower;
        self.gfn = lower.round_gfn(self.next_last_level_gfn);
        self.refresh(tables);
        true
    }

    #[inline]
    fn step_side(&mut self, tables: &T) -> bool {
        if self.index() == (1 << SPTE_LEVEL_BITS) - 1 {
            return false;
        }
        self.gfn += self.level.pages();
        self.next_last_level_gfn = self.gfn;
        self.refresh(tables);
        true
    }

    #[inline]
    fn step_up(&mut self, tables: &T) -> bool {
        if self.level == self.root_level {
            return false;
        }
        let Some(upper) = self.level.upper() else {
            return false;
        };
        self.level = upper;
        self.gfn = upper.round_gfn(self.gfn);
        self.refresh(tables);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spte::{MMU_PRESENT, NONPRESENT, PAGE_SIZE};
    use crate::test_rng::XorShift;
    use std::vec::Vec;

    /// A model page table: table `i` lives at pfn `i + 1`. A table freed
    /// by [`Model::relocate`] is poisoned: reading it is a test failure.
    struct Model(Vec<[u64; 512]>, Vec<bool>);

    impl Tables for Model {
        type Table = usize;
        fn read(&self, table: usize, index: usize) -> u64 {
            assert!(
                !self.1.get(table).copied().unwrap_or(false),
                "read of freed table {table}"
            );
            self.0[table][index]
        }
        fn child(&self, spte: Spte) -> Option<usize> {
            (spte.pfn() as usize).checked_sub(1)
        }
    }

    impl Model {
        fn new() -> Self {
            Model(Vec::new(), Vec::new())
        }

        fn new_table(&mut self) -> usize {
            self.0.push([NONPRESENT; 512]);
            self.1.push(false);
            self.0.len() - 1
        }

        /// What a concurrent zap-and-refault does while the walker has
        /// yielded: every table below `table` moves to a new page with the
        /// same contents, and the old pages are freed.
        fn relocate(&mut self, table: usize, level: Level) {
            for i in 0..512 {
                let spte = Spte(self.0[table][i]);
                if level > Level::PG_4K && spte.is_present() && !spte.is_leaf(level) {
                    let old = self.child(spte).unwrap();
                    let new = self.new_table();
                    self.0[new] = self.0[old];
                    self.1[old] = true;
                    self.0[table][i] =
                        (spte.0 & !(0xff_ffff_ffff << 12)) | ((new as u64 + 1) << 12);
                    self.relocate(new, level.lower().unwrap());
                }
            }
        }

        /// Fill `table` at `level` with a few random mappings and subtables.
        fn grow(&mut self, rng: &mut XorShift, table: usize, level: Level, budget: &mut u32) {
            for _ in 0..rng.below(6) + 1 {
                let i = rng.below(512) as usize;
                let roll = rng.below(10);
                self.0[table][i] = if level > Level::PG_4K && roll < 6 && *budget > 0 {
                    *budget -= 1;
                    let child = self.new_table();
                    self.grow(rng, child, level.lower().unwrap(), budget);
                    MMU_PRESENT | ((child as u64 + 1) << 12) | 0x7
                } else if level <= Level::PG_1G && roll < 9 {
                    let huge = if level > Level::PG_4K { PAGE_SIZE } else { 0 };
                    MMU_PRESENT | (0xabc << 12) | huge | 0x7
                } else {
                    NONPRESENT
                };
            }
        }
    }

    /// A random tree of four levels with at most 12 tables below its root:
    /// the model, its root table and the root's level.
    fn random_tree(rng: &mut XorShift) -> (Model, usize, Level) {
        let mut m = Model::new();
        let root = m.new_table();
        let l4 = Level::new(4).unwrap();
        let mut budget = 12;
        m.grow(rng, root, l4, &mut budget);
        (m, root, l4)
    }

    /// Reference: recursive pre-order of the SPTEs covering gfns >= start.
    fn reference(
        m: &Model,
        table: usize,
        level: Level,
        base: u64,
        min: Level,
        start: u64,
        out: &mut Vec<(u8, u64)>,
    ) {
        for i in 0..512u64 {
            let gfn = base + i * level.pages();
            if gfn + level.pages() <= start {
                continue;
            }
            out.push((level.get(), gfn));
            let spte = Spte(m.0[table][i as usize]);
            if level > min && spte.is_present() && !spte.is_leaf(level) {
                reference(
                    m,
                    m.child(spte).unwrap(),
                    level.lower().unwrap(),
                    gfn,
                    min,
                    start,
                    out,
                );
            }
        }
    }

    /// Walk `[start, end)` from table 0; at the `yield_at`-th SPTE the walker
    /// yields and every table below the root is moved and freed meanwhile.
    fn walk(
        m: &mut Model,
        root_level: Level,
        min: Level,
        start: u64,
        end: u64,
        yield_at: Option<usize>,
    ) -> Vec<(u8, u64)> {
        let mut it = TdpIter::start(m, 0, root_level, min, start, 0).unwrap();
        let mut out = Vec::new();
        while it.valid() && it.gfn() < end {
            out.push((it.level().get(), it.gfn()));
            if Some(out.len()) == yield_at {
                it.set_yielded();
                m.relocate(0, root_level);
            }
            it.next(m);
        }
        out
    }

    #[test]
    fn walk_matches_reference_on_random_trees() {
        let mut rng = XorShift(0x1234_5678);
        for case in 0..300 {
            let mut m = Model::new();
            let root = m.new_table();
            let root_level = if case % 2 == 0 {
                Level::new(4).unwrap()
            } else {
                Level::PG_1G
            };
            let mut budget = 12;
            m.grow(&mut rng, root, root_level, &mut budget);
            let span = root_level.next_gfn(0);
            let start = rng.below(span);
            let end = start + rng.below(span - start) + 1;
            let min = Level::new(rng.below(root_level.get() as u64) as u8 + 1).unwrap();

            let mut want = Vec::new();
            reference(&m, root, root_level, 0, min, start, &mut want);
            want.retain(|&(_, g)| g < end);
            assert_eq!(
                walk(&mut m, root_level, min, start, end, None),
                want,
                "case {case}"
            );
        }
    }

    /// A yield at any point re-walks from the root (the old path is freed
    /// meanwhile), re-visits at most that path, and misses nothing.
    #[test]
    fn restart_after_yield_misses_nothing() {
        let mut rng = XorShift(99);
        for case in 0..200 {
            let mut m = Model::new();
            let root = m.new_table();
            let mut budget = 10;
            m.grow(&mut rng, root, Level::new(4).unwrap(), &mut budget);
            let l4 = Level::new(4).unwrap();
            let full = walk(&mut m, l4, Level::PG_4K, 0, u64::MAX, None);
            let at = rng.below(full.len() as u64) as usize + 1;
            let got = walk(&mut m, l4, Level::PG_4K, 0, u64::MAX, Some(at));
            // Everything after the yield point is still visited, in order.
            let tail: Vec<_> = got.iter().skip(at).copied().collect();
            let missing: Vec<_> = full[at..].iter().filter(|e| !tail.contains(e)).collect();
            assert!(missing.is_empty(), "case {case}: missed {missing:?}");
            // At most the path from the root (4 entries) is seen twice.
            assert!(
                got.len() - full.len() <= 4,
                "case {case}: {} extra",
                got.len() - full.len()
            );
        }
    }

    /// The lookup ends where the single-gfn walk's last step is.
    #[test]
    fn last_on_path_is_where_a_one_gfn_walk_ends() {
        let mut rng = XorShift(0x1a57);
        for case in 0..500 {
            let (m, root, l4) = random_tree(&mut rng);
            // Mostly gfns that some entry maps, so the walks go deep.
            let gfn = if case % 2 == 0 {
                rng.below(l4.next_gfn(0))
            } else {
                let i = (0..512)
                    .find(|&i| Spte(m.0[root][i]).is_present())
                    .unwrap_or(0);
                (i as u64) * Level::new(4).unwrap().pages() + rng.below(1 << 27)
            };
            let min = Level::new(rng.below(4) as u8 + 1).unwrap();
            let mut it = TdpIter::start(&m, root, l4, min, gfn, 0).unwrap();
            let mut last = None;
            while it.valid() && it.gfn() <= gfn {
                let (table, index) = it.position();
                last = Some((table, index, it.level(), it.old_spte()));
                it.next(&m);
            }
            assert_eq!(last_on_path(&m, root, l4, min, gfn), last, "case {case}");
        }
        let m = Model::new();
        assert_eq!(last_on_path(&m, 0, Level::PG_2M, Level::PG_1G, 0), None);
    }

    /// Stopping at the end visits what stepping past it and checking
    /// visits, and a table linked under the last entry meanwhile is still
    /// entered.
    #[test]
    fn next_until_ends_where_stepping_leaves_the_range() {
        let mut rng = XorShift(0xe7d);
        for case in 0..300 {
            let (mut m, root, l4) = random_tree(&mut rng);
            let span = l4.next_gfn(0);
            let start = rng.below(span);
            let end = start + rng.below(if case % 2 == 0 { 4 } else { span - start }) + 1;
            let min = Level::new(rng.below(4) as u8 + 1).unwrap();
            let want = walk(&mut m, l4, min, start, end, None);
            let mut got = Vec::new();
            let mut it = TdpIter::start(&m, root, l4, min, start, 0).unwrap();
            while it.valid() && it.gfn() < end {
                got.push((it.level().get(), it.gfn()));
                it.next_until(&m, end);
            }
            assert_eq!(got, want, "case {case}");
        }

        let mut m = Model::new();
        let root = m.new_table();
        let mut it = TdpIter::start(&m, root, Level::PG_2M, Level::PG_4K, 5, 0).unwrap();
        assert_eq!((it.level(), it.gfn()), (Level::PG_2M, 0));
        let leaf = m.new_table();
        m.0[root][0] = MMU_PRESENT | ((leaf as u64 + 1) << 12);
        it.next_until(&m, 6);
        assert!(it.valid());
        assert_eq!((it.level(), it.gfn()), (Level::PG_4K, 5));
        it.next_until(&m, 6);
        assert!(!it.valid());
    }

    /// Descending visits, after its start, what stepping would visit next
    /// while it steps down: the same position, value and path, and the
    /// walks go on identically from there.
    #[test]
    fn descending_is_stepping_down() {
        let mut rng = XorShift(0xde5c);
        for case in 0..300 {
            let (m, root, l4) = random_tree(&mut rng);
            let start = rng.below(l4.next_gfn(0));
            let min = Level::new(rng.below(4) as u8 + 1).unwrap();
            let stop = Level::new(rng.below(4) as u8 + 1).unwrap();
            let mut stepped = TdpIter::start(&m, root, l4, min, start, 0).unwrap();
            let mut descended = TdpIter::start(&m, root, l4, min, start, 0).unwrap();
            for _ in 0..20 {
                // Step while the walk is on a link above `stop`.
                loop {
                    let s = stepped.old_spte();
                    let lvl = stepped.level();
                    if !stepped.valid()
                        || lvl <= stop
                        || lvl <= min
                        || !s.is_present()
                        || s.is_leaf(lvl)
                    {
                        break;
                    }
                    stepped.next(&m);
                }
                descended.descend(&m, stop);
                let at = |it: &TdpIter<Model>| {
                    (
                        it.valid(),
                        it.level(),
                        it.gfn(),
                        it.old_spte().0,
                        it.position(),
                    )
                };
                assert_eq!(at(&descended), at(&stepped), "case {case}");
                stepped.next(&m);
                descended.next(&m);
            }
        }
    }

    /// A walk that seeks the SPTEs a predicate accepts at the lowest level
    /// (as aging seeks young leaves) visits exactly the accepted SPTEs the
    /// stepping walk visits, in the same order.
    #[test]
    fn seeking_visits_what_stepping_accepts() {
        let mut rng = XorShift(0x5eed);
        for case in 0..300 {
            let (m, root, l4) = random_tree(&mut rng);
            let span = l4.next_gfn(0);
            let start = rng.below(span);
            let end = start + rng.below(span - start) + 1;
            let min = Level::new(rng.below(4) as u8 + 1).unwrap();
            let accept = |s: Spte| s.is_present() && s.pfn() % 3 != 1;

            let mut want = Vec::new();
            let mut it = TdpIter::start(&m, root, l4, min, start, 0).unwrap();
            while it.valid() && it.gfn() < end {
                if it.level() == min && accept(it.old_spte()) {
                    want.push((it.level().get(), it.gfn(), it.old_spte().0));
                }
                it.next(&m);
            }

            let mut got = Vec::new();
            let mut steps = 0;
            let mut it = TdpIter::start(&m, root, l4, min, start, 0).unwrap();
            while it.valid() && it.gfn() < end {
                steps += 1;
                if it.level() == min && accept(it.old_spte()) {
                    got.push((it.level().get(), it.gfn(), it.old_spte().0));
                }
                if it.seek(&m, end, accept) {
                    continue;
                }
                it.next(&m);
            }
            assert_eq!(got, want, "case {case}");
            assert!(
                steps <= want.len() * 2 + 4 * 512,
                "case {case}: {steps} steps"
            );
        }
    }

    #[test]
    fn seeking_stops_at_the_end_and_the_table_edge() {
        let mut m = Model::new();
        let root = m.new_table();
        let leaf = m.new_table();
        m.0[root][0] = MMU_PRESENT | ((leaf as u64 + 1) << 12);
        m.0[root][1] = MMU_PRESENT | (0x99 << 12) | PAGE_SIZE;
        m.0[leaf][7] = MMU_PRESENT | (0x11 << 12);
        m.0[leaf][300] = MMU_PRESENT | (0x12 << 12);
        let present = |s: Spte| s.is_present();
        let mut it = TdpIter::start(&m, root, Level::PG_2M, Level::PG_4K, 0, 0).unwrap();
        it.next(&m);
        assert_eq!((it.level(), it.gfn()), (Level::PG_4K, 0));
        assert!(it.seek(&m, 300, present));
        assert_eq!(it.gfn(), 7);
        // Gfn 300 is the end: not reached; left on 299.
        assert!(!it.seek(&m, 300, present));
        assert_eq!(it.gfn(), 299);
        it.next(&m);
        assert_eq!(it.gfn(), 300);
        assert!(!it.seek(&m, u64::MAX, present));
        assert_eq!(it.gfn(), 511);
        it.next(&m);
        assert_eq!((it.level(), it.gfn()), (Level::PG_2M, 512));
        // Above the lowest level it does not move.
        assert!(!it.seek(&m, u64::MAX, present));
        assert_eq!((it.level(), it.gfn()), (Level::PG_2M, 512));
    }

    #[test]
    fn min_level_stops_the_descent() {
        let mut m = Model::new();
        let root = m.new_table();
        let mid = m.new_table();
        let leaf = m.new_table();
        m.0[root][0] = MMU_PRESENT | ((mid as u64 + 1) << 12);
        m.0[mid][0] = MMU_PRESENT | ((leaf as u64 + 1) << 12);
        let got = walk(&mut m, Level::PG_1G, Level::PG_2M, 0, 2, None);
        assert_eq!(got, [(3, 0), (2, 0)]);
        let got = walk(&mut m, Level::PG_1G, Level::PG_4K, 0, 2, None);
        assert_eq!(got, [(3, 0), (2, 0), (1, 0), (1, 1)]);
    }

    #[test]
    fn gfn_bits_select_the_shared_half() {
        let mut m = Model::new();
        let root = m.new_table();
        // With gfn_bits = 1 << 18 (bit 0 of the 1G index), gfn 0 reads index 1.
        m.0[root][1] = MMU_PRESENT | (0x55 << 12) | PAGE_SIZE;
        let it = TdpIter::start(&m, root, Level::PG_1G, Level::PG_1G, 0, 1 << 18).unwrap();
        assert_eq!(it.old_spte().pfn(), 0x55);
        assert!(TdpIter::start(&m, root, Level::PG_1G, Level::PG_1G, 1 << 18, 1 << 18).is_none());
        assert!(TdpIter::start(&m, root, Level::PG_2M, Level::PG_1G, 0, 0).is_none());
    }

    #[test]
    fn a_link_to_no_table_is_not_entered() {
        let mut m = Model::new();
        let root = m.new_table();
        let mid = m.new_table();
        // Entry 0 links a table the model cannot find (pfn 0); entry 1 a
        // real one. The walk sees entry 0, stays at its level, goes on.
        m.0[root][0] = MMU_PRESENT;
        m.0[root][1] = MMU_PRESENT | ((mid as u64 + 1) << 12);
        m.0[mid][0] = MMU_PRESENT | (0x77 << 12) | 0x7;
        let got = walk(&mut m, Level::PG_2M, Level::PG_4K, 0, 1024, None);
        assert_eq!(got[..3], [(2, 0), (2, 512), (1, 512)]);
    }

    #[test]
    fn an_empty_walk_visits_nothing() {
        let mut m = Model::new();
        let root = m.new_table();
        m.0[root][0] = MMU_PRESENT | (0x55 << 12) | PAGE_SIZE;
        let it: TdpIter<Model> = TdpIter::empty(root, Level::PG_1G);
        assert!(!it.valid());
    }
}
