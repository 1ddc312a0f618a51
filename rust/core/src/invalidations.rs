// SPDX-License-Identifier: GPL-2.0

//! The gfn ranges of the MMU notifier invalidations in progress, against
//! which a page fault decides whether it must retry.
//!
//! A fault that looked up its pfn while an invalidation of its gfn was in
//! progress, or that overlapped one, must not install it: the page may be on
//! its way out. Upstream keeps one range per VM and widens it to the union
//! of every concurrent invalidation, and retries every fault whose lookup
//! overlapped the end of any invalidation (the sequence count moved), so a
//! fault between two unrelated invalidations retries for nothing.
//!
//! This tracker keeps the ranges of the current *epoch* (from an
//! invalidation starting with none in progress until the next such start):
//! up to [`MAX_RANGES`] sorted, disjoint ranges, the two closest merged only
//! when a new range does not fit, and "every gfn" while an invalidation has
//! started but not yet named its range. When an epoch closes, its ranges
//! move to a history of [`HISTORY`] ranges tagged with kvm.ko's sequence
//! count at the epoch's last end; the oldest leave the history first, and
//! the newest tag that left is remembered.
//!
//! A fault whose sequence snapshot is `S` retries if its gfn is in a range
//! of the current epoch while invalidations are in progress or since the
//! sequence moved, or in a history range tagged after `S`, or if a range
//! tagged after `S` has left the history (then, as upstream, whenever the
//! sequence moved).
//!
//! # Invariants
//!
//! - Writers ([`Invalidations::start`], [`Invalidations::add`],
//!   [`Invalidations::end`]) are serialized by the caller (`mmu_lock` held for
//!   write); [`Invalidations::must_retry`] called under `mmu_lock` sees a
//!   consistent state. Without the lock it may err either way, but every
//!   field is atomic, so it is memory-safe.
//! - Every range added in the current epoch is covered by a current range
//!   (merging only widens).
//! - Every invalidation that ended in an earlier epoch, at sequence `E`, is
//!   covered by a history range tagged at least `E`, or a range tagged at
//!   least `E` has left the history (`evicted`).

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How many disjoint ranges the current epoch keeps before merging.
pub const MAX_RANGES: usize = 8;
/// How many ranges of closed epochs are kept.
pub const HISTORY: usize = 32;

fn zeros<const N: usize>() -> [AtomicU64; N] {
    core::array::from_fn(|_| AtomicU64::new(0))
}

/// The invalidations in progress of one VM, and those that ended recently.
pub struct Invalidations {
    in_progress: AtomicU32,
    len: AtomicU32,
    /// Current epoch: `[start, end)` pairs; entries from `len` on are unused.
    starts: [AtomicU64; MAX_RANGES],
    ends: [AtomicU64; MAX_RANGES],
    /// History ring: `hist_next` counts every range ever pushed.
    hist_next: AtomicU64,
    hist_starts: [AtomicU64; HISTORY],
    hist_ends: [AtomicU64; HISTORY],
    hist_tags: [AtomicU64; HISTORY],
    /// The newest tag of a range that left the history.
    evicted: AtomicU64,
}

impl Default for Invalidations {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a fault must retry, if it must.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// It may install its pfn.
    No,
    /// Its gfn is in an invalidation in progress or ended since its lookup.
    InRange,
    /// An invalidation ended since its lookup, and which ranges it covered
    /// is no longer known.
    Sequence,
}

impl Invalidations {
    /// No invalidation in progress, none in the history.
    pub fn new() -> Self {
        Self {
            in_progress: AtomicU32::new(0),
            len: AtomicU32::new(0),
            starts: zeros(),
            ends: zeros(),
            hist_next: AtomicU64::new(0),
            hist_starts: zeros(),
            hist_ends: zeros(),
            hist_tags: zeros(),
            evicted: AtomicU64::new(0),
        }
    }

    /// An invalidation starts (`kvm_mmu_invalidate_start()`) while kvm.ko's
    /// invalidation sequence is `seq`; its range follows with
    /// [`Invalidations::add`].
    pub fn start(&self, seq: u64) {
        let before = self.in_progress.load(Ordering::Relaxed);
        if before == 0 {
            // A new epoch: the last one's ranges ended by sequence `seq`.
            let closed = self.load();
            for i in 0..closed.len {
                self.push_history(closed.starts[i], closed.ends[i], seq);
            }
            self.len.store(0, Ordering::Release);
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

    /// Whether `gfn` may be inside an invalidation in progress.
    pub fn contains(&self, gfn: u64) -> bool {
        if !self.in_progress() {
            return false;
        }
        let ranges = self.load();
        // Started but no range yet: anything may be going away.
        ranges.len == 0 || ranges.contains(gfn)
    }

    /// Whether a fault on `gfn` that read kvm.ko's invalidation sequence as
    /// `snapshot` before looking up its pfn must retry, the sequence now
    /// being `current` (`mmu_invalidate_retry_gfn()`).
    pub fn must_retry(&self, gfn: u64, snapshot: u64, current: u64) -> Retry {
        if self.contains(gfn) {
            return Retry::InRange;
        }
        if current == snapshot {
            return Retry::No;
        }
        // Invalidations ended since the snapshot: in this epoch...
        if self.load().contains(gfn) {
            return Retry::InRange;
        }
        // ...or in an earlier one that closed after the snapshot.
        if self.history_contains(gfn, snapshot) {
            return Retry::InRange;
        }
        if self.evicted.load(Ordering::Acquire) > snapshot {
            return Retry::Sequence;
        }
        Retry::No
    }

    fn push_history(&self, start: u64, end: u64, tag: u64) {
        let n = self.hist_next.load(Ordering::Relaxed);
        let slot = (n % HISTORY as u64) as usize;
        if n >= HISTORY as u64 {
            let old = self.hist_tags[slot].load(Ordering::Relaxed);
            if old > self.evicted.load(Ordering::Relaxed) {
                self.evicted.store(old, Ordering::Release);
            }
        }
        self.hist_starts[slot].store(start, Ordering::Relaxed);
        self.hist_ends[slot].store(end, Ordering::Relaxed);
        self.hist_tags[slot].store(tag, Ordering::Relaxed);
        self.hist_next.store(n + 1, Ordering::Release);
    }

    fn history_contains(&self, gfn: u64, snapshot: u64) -> bool {
        let n = self.hist_next.load(Ordering::Acquire).min(HISTORY as u64) as usize;
        (0..n).any(|i| {
            self.hist_tags[i].load(Ordering::Relaxed) > snapshot
                && self.hist_starts[i].load(Ordering::Relaxed) <= gfn
                && gfn < self.hist_ends[i].load(Ordering::Relaxed)
        })
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

    /// The ranges of the current epoch, for tests and statistics.
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;
    use std::vec;
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
        inv.start(0);
        inv.add(0x100, 0x200);
        inv.start(0);
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
        inv.start(0);
        assert!(inv.contains(0) && inv.contains(u64::MAX));
        inv.add(5, 6);
        assert!(!inv.contains(0) && inv.contains(5));
        inv.end();
        assert!(!inv.contains(5));
    }

    #[test]
    fn ranges_persist_until_no_invalidation_is_left() {
        let inv = Invalidations::new();
        inv.start(0);
        inv.add(10, 20);
        inv.start(0);
        inv.add(30, 40);
        inv.end();
        // `end` does not say which one ended: both stay.
        assert!(inv.contains(15) && inv.contains(35));
        inv.end();
        inv.start(0);
        inv.add(50, 60);
        assert!(!inv.contains(15) && inv.contains(55));
    }

    #[test]
    fn overflow_merges_the_closest_pair() {
        let inv = Invalidations::new();
        inv.start(0);
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
                        inv.start(0);
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

    /// A timeline of invalidations (start and first range under one lock
    /// hold, as kvm.ko does; more ranges; ends that bump the sequence) and of
    /// faults that snapshot the sequence and check later. A fault must retry
    /// if an invalidation covering its gfn was in progress at any point
    /// between its snapshot and its check.
    #[test]
    fn must_retry_never_misses_an_overlapping_invalidation() {
        struct Inv {
            ranges: Vec<(u64, u64)>,
            ended_at: Option<u64>,
        }
        let mut rng = XorShift(0xfee1_dead);
        let (mut checked, mut spared) = (0u64, 0u64);
        let mut evictions = 0u64;
        for _ in 0..300 {
            let inv = Invalidations::new();
            let mut seq = 0u64;
            let mut all: Vec<Inv> = Vec::new();
            // (gfn, snapshot, the step from which it may be checked)
            let mut faults: Vec<(u64, u64, u32)> = Vec::new();
            for step in 0..800u32 {
                match rng.below(6) {
                    0 => {
                        let s = rng.below(1 << 8);
                        let r = (s, s + 1 + rng.below(16));
                        inv.start(seq);
                        inv.add(r.0, r.1);
                        all.push(Inv {
                            ranges: vec![r],
                            ended_at: None,
                        });
                    }
                    1 => {
                        let active: Vec<usize> = (0..all.len())
                            .filter(|&i| all[i].ended_at.is_none())
                            .collect();
                        if let Some(&i) = active.get(rng.below(active.len().max(1) as u64) as usize)
                        {
                            let s = rng.below(1 << 8);
                            let r = (s, s + 1 + rng.below(16));
                            inv.add(r.0, r.1);
                            all[i].ranges.push(r);
                        }
                    }
                    2 => {
                        let active: Vec<usize> = (0..all.len())
                            .filter(|&i| all[i].ended_at.is_none())
                            .collect();
                        if let Some(&i) = active.get(rng.below(active.len().max(1) as u64) as usize)
                        {
                            seq += 1;
                            all[i].ended_at = Some(seq);
                            inv.end();
                        }
                    }
                    3 => {
                        // A quarter of the faults take long: hundreds of steps.
                        let delay = if rng.below(4) == 0 { 300 } else { 0 };
                        faults.push((rng.below(1 << 8), seq, step + delay));
                    }
                    _ => {
                        let Some(i) = faults.iter().position(|f| f.2 <= step) else {
                            continue;
                        };
                        let (gfn, snap, _) = faults.swap_remove(i);
                        let overlapped = all.iter().any(|i| {
                            i.ranges.iter().any(|&(s, e)| s <= gfn && gfn < e)
                                && i.ended_at.is_none_or(|end| end > snap)
                        });
                        let answer = inv.must_retry(gfn, snap, seq);
                        checked += 1;
                        if overlapped {
                            assert_ne!(
                                answer,
                                Retry::No,
                                "missed gfn {gfn:#x} snapshot {snap} now {seq}"
                            );
                        } else if answer == Retry::No && snap != seq {
                            spared += 1;
                        }
                    }
                }
            }
            evictions += u64::from(inv.evicted.load(Ordering::Relaxed) > 0);
        }
        // The history overflowed in some runs, so eviction was exercised.
        assert!(evictions > 10, "history overflowed in {evictions} runs");
        // The point of it all: faults that upstream's sequence check would
        // retry are spared.
        assert!(spared > checked / 20, "spared {spared} of {checked}");
    }
}

/// Loom model: `RUSTFLAGS="--cfg loom" cargo test --release loom_tests`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::{Arc, RwLock};
    use loom::thread;

    /// kvm.ko's side of one VM: `mmu_lock`, `mmu_invalidate_seq`, and where
    /// the one invalidation of the model is (0 before its start, 1 in
    /// progress, 2 ended), all written under the lock held for write.
    struct Vm {
        mmu_lock: RwLock<()>,
        seq: AtomicU64,
        phase: AtomicU32,
        inv: Invalidations,
    }

    /// An MMU notifier invalidates `[10, 20)` (start and range under one
    /// write-locked section, end under another, as kvm.ko does), racing a
    /// fault that reads the sequence without the lock, then checks gfn 15
    /// (inside) and gfn 30 (outside) under the lock held for read. Whatever
    /// the interleaving: the fault on 15 retries unless the invalidation
    /// had not started when it checked, or had ended before its snapshot;
    /// the fault on 30 never retries.
    #[test]
    fn fault_check_against_start_add_end() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let vm = Arc::new(Vm {
                mmu_lock: RwLock::new(()),
                seq: AtomicU64::new(0),
                phase: AtomicU32::new(0),
                inv: Invalidations::new(),
            });
            let notifier = {
                let vm = vm.clone();
                thread::spawn(move || {
                    {
                        let _w = vm.mmu_lock.write().unwrap();
                        vm.inv.start(vm.seq.load(Ordering::Relaxed));
                        vm.inv.add(10, 20);
                        vm.phase.store(1, Ordering::Relaxed);
                    }
                    let _w = vm.mmu_lock.write().unwrap();
                    vm.seq.fetch_add(1, Ordering::Release);
                    vm.inv.end();
                    vm.phase.store(2, Ordering::Relaxed);
                })
            };
            let snapshot = vm.seq.load(Ordering::Acquire);
            let (phase, inside, outside) = {
                let _r = vm.mmu_lock.read().unwrap();
                let current = vm.seq.load(Ordering::Relaxed);
                (
                    vm.phase.load(Ordering::Relaxed),
                    vm.inv.must_retry(15, snapshot, current),
                    vm.inv.must_retry(30, snapshot, current),
                )
            };
            notifier.join().unwrap();
            let ended_before_snapshot = snapshot == 1;
            if phase != 0 && !ended_before_snapshot {
                assert_ne!(inside, Retry::No, "phase {phase}, snapshot {snapshot}");
            }
            assert_eq!(outside, Retry::No, "phase {phase}, snapshot {snapshot}");
        });
    }
}
