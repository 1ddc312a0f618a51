// SPDX-License-Identifier: GPL-2.0

//! The gfn ranges of the MMU notifier invalidations in progress, against
//! which a page fault decides whether it must retry.
//!
//! A fault that looked up its pfn while an invalidation of its gfn was in
//! progress must not install it: the page may be on its way out. Upstream
//! keeps one range per VM and widens it to the union of every concurrent
//! invalidation, so a fault between two unrelated invalidations retries for
//! nothing. This tracker keeps up to [`MAX_RANGES`] disjoint ranges, merges
//! the two closest only when a new range does not fit, and answers "in
//! progress" for every gfn only while an invalidation has started but not
//! yet named its range.
//!
//! # Invariants
//!
//! - Writers ([`Invalidations::start`], [`Invalidations::add`],
//!   [`Invalidations::end`]) are serialized by the caller (`mmu_lock` held for
//!   write); [`Invalidations::contains`] runs under `mmu_lock` too (for
//!   read), so it sees a consistent state. [`Invalidations::contains_racy`]
//!   may run without it and may err either way.
//! - While any invalidation is in progress, every gfn of every range added
//!   since the count last left zero is covered by a stored range (merging
//!   only widens), so [`Invalidations::contains`] has no false negatives.
//! - The stored ranges are sorted, disjoint and not adjacent.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How many disjoint ranges are kept before the closest two are merged.
pub const MAX_RANGES: usize = 8;

/// The invalidations in progress of one VM.
pub struct Invalidations {
    in_progress: AtomicU32,
    len: AtomicU32,
    /// `[start, end)` pairs; entries at `len` and above are unused.
    starts: [AtomicU64; MAX_RANGES],
    ends: [AtomicU64; MAX_RANGES],
}

impl Default for Invalidations {
    fn default() -> Self {
        Self::new()
    }
}

impl Invalidations {
    /// No invalidation in progress.
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        Self {
            in_progress: AtomicU32::new(0),
            len: AtomicU32::new(0),
            starts: [ZERO; MAX_RANGES],
            ends: [ZERO; MAX_RANGES],
        }
    }

    /// An invalidation starts (`kvm_mmu_invalidate_start()`); its range
    /// follows with [`Invalidations::add`].
    pub fn start(&self) {
        let before = self.in_progress.load(Ordering::Relaxed);
        if before == 0 {
            // Ranges of finished invalidations are dropped only when none
            // is left in progress: `end` does not say which range ended.
            self.len.store(0, Ordering::Relaxed);
        }
        self.in_progress.store(before + 1, Ordering::Release);
    }

    /// The invalidation in progress covers `[start, end)`.
    pub fn add(&self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut ranges = self.load();
        ranges.insert(start, end);
        self.store(&ranges);
    }

    /// An invalidation ends (`kvm_mmu_invalidate_end()`).
    pub fn end(&self) {
        let before = self.in_progress.load(Ordering::Relaxed);
        self.in_progress
            .store(before.saturating_sub(1), Ordering::Release);
    }

    /// Whether invalidations are in progress.
    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Acquire) != 0
    }

    /// Whether `gfn` may be inside an invalidation in progress. Exact with
    /// the writers excluded (see the module invariants); never a false
    /// negative.
    pub fn contains(&self, gfn: u64) -> bool {
        if !self.in_progress() {
            return false;
        }
        let ranges = self.load();
        // Started but no range yet: anything may be going away.
        ranges.len == 0 || ranges.contains(gfn)
    }

    /// [`Invalidations::contains`] without `mmu_lock`: a pre-check that may
    /// err either way, for a fault that will check again under the lock.
    pub fn contains_racy(&self, gfn: u64) -> bool {
        self.contains(gfn)
    }

    fn load(&self) -> Ranges {
        let len = (self.len.load(Ordering::Acquire) as usize).min(MAX_RANGES);
        let mut r = Ranges::default();
        for i in 0..len {
            r.starts[i] = self.starts[i].load(Ordering::Relaxed);
            r.ends[i] = self.ends[i].load(Ordering::Relaxed);
        }
        r.len = len;
        r
    }

    fn store(&self, r: &Ranges) {
        for i in 0..r.len {
            self.starts[i].store(r.starts[i], Ordering::Relaxed);
            self.ends[i].store(r.ends[i], Ordering::Relaxed);
        }
        self.len.store(r.len as u32, Ordering::Release);
    }

    /// The stored ranges, for tests and statistics.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> {
        let r = self.load();
        (0..r.len).map(move |i| (r.starts[i], r.ends[i]))
    }
}

/// A sorted set of at most [`MAX_RANGES`] disjoint, non-adjacent ranges.
#[derive(Default, Clone, Copy)]
struct Ranges {
    starts: [u64; MAX_RANGES],
    ends: [u64; MAX_RANGES],
    len: usize,
}

impl Ranges {
    fn contains(&self, gfn: u64) -> bool {
        (0..self.len).any(|i| self.starts[i] <= gfn && gfn < self.ends[i])
    }

    /// Add `[start, end)`, merging what it overlaps or touches, then the two
    /// closest ranges while there are more than [`MAX_RANGES`].
    fn insert(&mut self, mut start: u64, mut end: u64) {
        let mut out = Ranges::default();
        let mut placed = false;
        let mut pending: [(u64, u64); MAX_RANGES + 1] = [(0, 0); MAX_RANGES + 1];
        let mut n = 0;
        for i in 0..self.len {
            let (s, e) = (self.starts[i], self.ends[i]);
            if e < start {
                pending[n] = (s, e);
                n += 1;
            } else if end < s {
                if !placed {
                    pending[n] = (start, end);
                    n += 1;
                    placed = true;
                }
                pending[n] = (s, e);
                n += 1;
            } else {
                // Overlapping or adjacent: absorb.
                start = start.min(s);
                end = end.max(e);
            }
        }
        if !placed {
            pending[n] = (start, end);
            n += 1;
        }
        // Too many: merge the neighbours with the smallest gap.
        while n > MAX_RANGES {
            let mut best = 0;
            for i in 1..n - 1 {
                if pending[i + 1].0 - pending[i].1 < pending[best + 1].0 - pending[best].1 {
                    best = i;
                }
            }
            pending[best].1 = pending[best + 1].1;
            for i in best + 1..n - 1 {
                pending[i] = pending[i + 1];
            }
            n -= 1;
        }
        for (i, (s, e)) in pending.iter().take(n).enumerate() {
            out.starts[i] = *s;
            out.ends[i] = *e;
        }
        out.len = n;
        *self = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;
    use std::vec::Vec;

    /// Reference: every range added since the count left zero, kept as is.
    struct Model {
        in_progress: u32,
        added: Vec<(u64, u64)>,
    }

    impl Model {
        fn contains(&self, gfn: u64) -> bool {
            self.in_progress > 0 && self.added.iter().any(|&(s, e)| s <= gfn && gfn < e)
        }
    }

    fn check_shape(inv: &Invalidations) {
        let r: Vec<_> = inv.ranges().collect();
        assert!(r.len() <= MAX_RANGES);
        for w in r.windows(2) {
            assert!(
                w[0].0 < w[0].1 && w[0].1 < w[1].0,
                "sorted, disjoint, not adjacent: {r:?}"
            );
        }
    }

    #[test]
    fn disjoint_ranges_leave_the_gap_alone() {
        let inv = Invalidations::new();
        inv.start();
        inv.add(0x100, 0x200);
        inv.start();
        inv.add(0x300, 0x400);
        assert!(inv.contains(0x100) && inv.contains(0x1ff));
        assert!(inv.contains(0x300) && inv.contains(0x3ff));
        // Between the two: upstream's union would say yes.
        assert!(!inv.contains(0x250));
        assert!(!inv.contains(0x200) && !inv.contains(0x400));
        inv.end();
        inv.end();
        assert!(!inv.contains(0x100));
    }

    #[test]
    fn started_without_a_range_covers_everything() {
        let inv = Invalidations::new();
        inv.start();
        assert!(inv.contains(0) && inv.contains(u64::MAX));
        inv.add(5, 6);
        assert!(!inv.contains(0) && inv.contains(5));
        inv.end();
        assert!(!inv.contains(5));
    }

    #[test]
    fn ranges_persist_until_no_invalidation_is_left() {
        let inv = Invalidations::new();
        inv.start();
        inv.add(10, 20);
        inv.start();
        inv.add(30, 40);
        inv.end();
        // `end` does not say which one ended: both stay.
        assert!(inv.contains(15) && inv.contains(35));
        inv.end();
        inv.start();
        inv.add(50, 60);
        assert!(!inv.contains(15) && inv.contains(55));
    }

    #[test]
    fn overflow_merges_the_closest_pair() {
        let inv = Invalidations::new();
        inv.start();
        for i in 0..MAX_RANGES as u64 {
            inv.add(i * 100, i * 100 + 10);
        }
        // Gap of 5 after [0, 10): the closest pair once a ninth range comes.
        inv.add(15, 20);
        check_shape(&inv);
        assert_eq!(inv.ranges().count(), MAX_RANGES);
        assert!(inv.contains(12), "merged ranges cover their gap");
        assert!(!inv.contains(50));
    }

    #[test]
    fn never_a_false_negative_against_the_model() {
        let mut rng = XorShift(0x1234_5678);
        for _ in 0..2000 {
            let inv = Invalidations::new();
            let mut m = Model {
                in_progress: 0,
                added: Vec::new(),
            };
            for _ in 0..40 {
                match rng.below(4) {
                    0 => {
                        if m.in_progress == 0 {
                            m.added.clear();
                        }
                        m.in_progress += 1;
                        inv.start();
                    }
                    1 | 2 if m.in_progress > 0 => {
                        let s = rng.below(1 << 12);
                        let e = s + 1 + rng.below(64);
                        m.added.push((s, e));
                        inv.add(s, e);
                    }
                    3 if m.in_progress > 0 => {
                        m.in_progress -= 1;
                        inv.end();
                    }
                    _ => {}
                }
                check_shape(&inv);
                for _ in 0..32 {
                    let gfn = rng.below(1 << 12);
                    if m.contains(gfn) {
                        assert!(inv.contains(gfn), "false negative at {gfn:#x}");
                    }
                }
                if m.in_progress == 0 {
                    assert!(!inv.contains(rng.below(1 << 12)));
                }
                // With few ranges nothing is merged: exact.
                if m.in_progress > 0 && !m.added.is_empty() && m.added.len() <= 1 {
                    let gfn = rng.below(1 << 12);
                    assert_eq!(inv.contains(gfn), m.contains(gfn));
                }
            }
        }
    }
}
