// SPDX-License-Identifier: GPL-2.0

//! Bounded deferred freeing of removed page tables.
//!
//! A removed page table may still be read by lockless walkers, so it is
//! freed only after an RCU grace period. Upstream queues one RCU callback per
//! table, so the memory waiting for grace periods grows without bound while
//! grace periods are slow. Here a VM's removed tables are counted and
//! chained on one lock-free queue, and at most `SLOTS` RCU callbacks per VM
//! are in flight, each freeing the whole chain that was queued when it was
//! posted:
//!
//! - [`Reclaim::queue`] counts a removed table as pending and pushes it; the
//!   remover then calls [`Reclaim::submit`], which hands everything queued to
//!   a free slot, whose grace period the caller starts (`call_rcu()`). With
//!   every slot in flight the table stays queued: in contexts that may not
//!   sleep, removals batch into the next callback instead of each queueing
//!   its own.
//! - A slot's callback frees the chain [`Reclaim::take`] gives it, reports
//!   it with [`Reclaim::done`], and calls [`Reclaim::submit`] again: the
//!   tables queued meanwhile are never stranded, because a remover that
//!   found no free slot queued before it looked, and the callback freed its
//!   slot before it looked at the queue.
//! - A path that may drop `mmu_lock` and sleep checks [`Reclaim::over_budget`]
//!   at its yield points; over budget, it [`Reclaim::steal`]s the queue,
//!   waits for a grace period itself, frees the chain and reports it with
//!   [`Reclaim::freed`], instead of removing more.
//!
//! The chain links are stored in the tables' own headers, through
//! [`Links`], so queueing never allocates.
//!
//! # Invariants
//!
//! - `pending` is the number of tables queued, in a slot's chain, or stolen
//!   and not yet freed; `peak` is at least every value `pending` took.
//! - Bit `i` of `busy` is set exactly while slot `i` has a chain whose
//!   callback has not reported it done; its chain is `chains[i]` until the
//!   callback takes it.
//! - A table is in at most one of: the queue, one slot's chain, one
//!   waiter's stolen chain.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// How chains of removed tables are linked: a node is the nonzero address of
/// a table's header, and its link a word of that header the table's owner
/// no longer uses.
pub trait Links {
    /// The node after `node` in its chain, 0 at the end.
    fn next(&self, node: usize) -> usize;
    /// Link `node` to `next`. Only the node's owner calls this.
    fn set_next(&self, node: usize, next: usize);
}

/// The removed tables of one VM waiting for a grace period.
pub struct Reclaim<const SLOTS: usize> {
    pending: AtomicU64,
    peak: AtomicU64,
    budget: AtomicU64,
    queued: AtomicUsize,
    busy: AtomicU32,
    chains: [AtomicUsize; SLOTS],
    batches: AtomicU64,
    waits: AtomicU64,
}

/// Rounds of "submit what is queued, then wait for every callback in
/// flight" that empty a [`Reclaim`] to which nothing is queued any more: the
/// first round's wait runs the callbacks already in flight, each of which
/// submits the queue again; the second's runs those. One more for slack; a
/// teardown that still finds tables pending after this many rounds has a
/// wrong count and must report it, not wait for ever.
pub const DRAIN_ROUNDS: usize = 3;

/// A snapshot of a VM's deferred freeing, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    /// Tables removed and not freed yet.
    pub pending: u64,
    /// The most tables that were pending at once.
    pub peak: u64,
    /// Pending tables at which paths that may sleep wait for a grace period.
    pub budget: u64,
    /// RCU callbacks posted.
    pub batches: u64,
    /// Grace periods waited for because the budget was reached.
    pub waits: u64,
}

impl<const SLOTS: usize> Reclaim<SLOTS> {
    const ALL: u32 = {
        assert!(SLOTS > 0 && SLOTS <= 32);
        if SLOTS == 32 {
            u32::MAX
        } else {
            (1 << SLOTS) - 1
        }
    };

    /// Nothing pending, with `budget` pending tables allowed.
    pub fn new(budget: u64) -> Self {
        Reclaim {
            pending: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            budget: AtomicU64::new(budget),
            queued: AtomicUsize::new(0),
            busy: AtomicU32::new(0),
            chains: core::array::from_fn(|_| AtomicUsize::new(0)),
            batches: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    /// Change the budget; takes effect at the next yield point.
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget, Ordering::Relaxed);
    }

    /// Count `node`, a table that its remover owns now, as pending and
    /// queue it. The caller then calls [`Reclaim::submit`].
    pub fn queue(&self, links: &impl Links, node: usize) {
        debug_assert!(node != 0);
        let pending = self.pending.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(pending, Ordering::Relaxed);
        let mut head = self.queued.load(Ordering::Relaxed);
        loop {
            links.set_next(node, head);
            // SeqCst: ordered before this thread's look at `busy` in
            // `submit`, against `done`'s release of a slot (module doc).
            match self
                .queued
                .compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Hand everything queued to a free slot. Returns the slot, whose grace
    /// period the caller must start, or `None` when nothing is queued or
    /// every slot is in flight (a callback in flight submits the queue when
    /// it is done).
    #[must_use = "a slot handed out stays in flight until its grace period is started"]
    pub fn submit(&self) -> Option<usize> {
        loop {
            if self.queued.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let busy = self.busy.load(Ordering::SeqCst);
            let free = !busy & Self::ALL;
            if free == 0 {
                return None;
            }
            let slot = free.trailing_zeros();
            if self
                .busy
                .compare_exchange(busy, busy | 1 << slot, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            let chain = self.queued.swap(0, Ordering::SeqCst);
            if chain == 0 {
                // Somebody else submitted or stole it; look again, as a
                // remover may have found every slot busy meanwhile.
                self.busy.fetch_and(!(1 << slot), Ordering::SeqCst);
                continue;
            }
            // INVARIANT: the slot is ours (its bit was clear), and the chain
            // left the queue.
            self.chains[slot as usize].store(chain, Ordering::Release);
            self.batches.fetch_add(1, Ordering::Relaxed);
            return Some(slot as usize);
        }
    }

    /// From `slot`'s callback, after its grace period: the chain to free.
    pub fn take(&self, slot: usize) -> usize {
        self.chains[slot].swap(0, Ordering::Acquire)
    }

    /// `slot`'s callback freed the `count` tables of its chain. The caller
    /// then calls [`Reclaim::submit`].
    pub fn done(&self, slot: usize, count: u64) {
        self.pending.fetch_sub(count, Ordering::Relaxed);
        // SeqCst: ordered before the caller's look at the queue in `submit`.
        self.busy.fetch_and(!(1 << slot), Ordering::SeqCst);
    }

    /// Whether a path that may sleep must wait for a grace period before it
    /// removes more tables.
    #[inline]
    pub fn over_budget(&self) -> bool {
        self.pending.load(Ordering::Relaxed) >= self.budget.load(Ordering::Relaxed)
    }

    /// Take the queue, to free after a grace period the caller waits for.
    /// Returns the chain (0 when empty) and counts the wait.
    pub fn steal(&self) -> usize {
        self.waits.fetch_add(1, Ordering::Relaxed);
        self.queued.swap(0, Ordering::SeqCst)
    }

    /// The caller freed `count` tables it stole.
    pub fn freed(&self, count: u64) {
        self.pending.fetch_sub(count, Ordering::Relaxed);
    }

    /// Whether a callback is in flight.
    pub fn in_flight(&self) -> bool {
        self.busy.load(Ordering::SeqCst) != 0
    }

    /// Tables removed and not freed yet.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// The current counts.
    pub fn stats(&self) -> ReclaimStats {
        ReclaimStats {
            pending: self.pending.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            budget: self.budget.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
        }
    }
}

/// Call `free` on every node of `chain`, reading each link before the node
/// is freed. Returns how many there were.
pub fn free_chain(links: &impl Links, mut chain: usize, mut free: impl FnMut(usize)) -> u64 {
    let mut count = 0;
    while chain != 0 {
        let next = links.next(chain);
        free(chain);
        count += 1;
        chain = next;
    }
    count
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::cell::Cell;
    use std::vec::Vec;

    /// Nodes 1..=N with their links in a vector.
    struct Nodes(Vec<Cell<usize>>);

    impl Nodes {
        fn new(n: usize) -> Self {
            Nodes((0..=n).map(|_| Cell::new(usize::MAX)).collect())
        }
    }

    impl Links for Nodes {
        fn next(&self, node: usize) -> usize {
            self.0[node].get()
        }
        fn set_next(&self, node: usize, next: usize) {
            self.0[node].set(next);
        }
    }

    fn collect(links: &Nodes, chain: usize) -> Vec<usize> {
        let mut v = Vec::new();
        free_chain(links, chain, |n| v.push(n));
        v.sort();
        v
    }

    #[test]
    fn removals_batch_while_every_slot_is_in_flight() {
        let nodes = Nodes::new(10);
        let r = Reclaim::<2>::new(100);
        r.queue(&nodes, 1);
        assert_eq!(r.submit(), Some(0));
        r.queue(&nodes, 2);
        assert_eq!(r.submit(), Some(1));
        for n in 3..=10 {
            r.queue(&nodes, n);
            assert_eq!(r.submit(), None, "no free slot: node {n} stays queued");
        }
        assert_eq!(r.stats().pending, 10);
        assert_eq!(r.stats().batches, 2);

        // Slot 0's grace period ends: its one table is freed, and the eight
        // queued meanwhile go out as one batch.
        assert_eq!(collect(&nodes, r.take(0)), [1]);
        r.done(0, 1);
        assert_eq!(r.submit(), Some(0));
        assert_eq!(collect(&nodes, r.take(0)), [3, 4, 5, 6, 7, 8, 9, 10]);
        r.done(0, 8);
        assert_eq!(collect(&nodes, r.take(1)), [2]);
        r.done(1, 1);
        assert_eq!(r.submit(), None);
        let s = r.stats();
        assert_eq!((s.pending, s.peak, s.batches), (0, 10, 3));
        assert!(!r.in_flight());
    }

    /// Teardown's drain: each round submits, then "waits for every
    /// callback in flight", running those posted before the wait (as
    /// `rcu_barrier()`); a callback submits again, for the next round.
    #[test]
    fn drain_empties_within_its_rounds() {
        for in_flight in 0..=2 {
            for queued in 0..=20 {
                let nodes = Nodes::new(in_flight + queued);
                let r = Reclaim::<2>::new(1000);
                let mut posted = Vec::new();
                for n in 1..=in_flight {
                    r.queue(&nodes, n);
                    posted.extend(r.submit());
                }
                for n in in_flight + 1..=in_flight + queued {
                    r.queue(&nodes, n);
                    posted.extend(r.submit());
                }
                let mut rounds = 0;
                while r.pending() != 0 {
                    assert!(
                        rounds < DRAIN_ROUNDS,
                        "{in_flight} in flight, {queued} queued"
                    );
                    posted.extend(r.submit());
                    for slot in core::mem::take(&mut posted) {
                        let count = free_chain(&nodes, r.take(slot), |_| {});
                        r.done(slot, count);
                        posted.extend(r.submit());
                    }
                    rounds += 1;
                }
                assert!(posted.is_empty() && !r.in_flight());
            }
        }
    }

    #[test]
    fn over_budget_from_the_budget_on_and_steal_empties_the_queue() {
        let nodes = Nodes::new(4);
        let r = Reclaim::<1>::new(3);
        r.queue(&nodes, 1);
        r.queue(&nodes, 2);
        assert!(!r.over_budget());
        r.queue(&nodes, 3);
        assert!(r.over_budget());
        let chain = r.steal();
        assert_eq!(r.steal(), 0);
        assert_eq!(collect(&nodes, chain), [1, 2, 3]);
        r.freed(3);
        assert!(!r.over_budget());
        assert_eq!(r.stats().waits, 2);
        r.set_budget(0);
        assert!(r.over_budget(), "a zero budget waits at every yield point");
    }
}

/// Loom models: `RUSTFLAGS="--cfg loom" cargo test --release reclaim`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    const NODES: usize = 4;

    /// Links, and whether each node was freed.
    struct Nodes {
        next: [AtomicUsize; NODES + 1],
        freed: [AtomicBool; NODES + 1],
    }

    impl Links for Nodes {
        fn next(&self, node: usize) -> usize {
            self.next[node].load(Ordering::Relaxed)
        }
        fn set_next(&self, node: usize, next: usize) {
            self.next[node].store(next, Ordering::Relaxed);
        }
    }

    impl Nodes {
        fn free(&self, node: usize) {
            assert!(
                !self.freed[node].swap(true, Ordering::Relaxed),
                "node {node} freed twice"
            );
        }
    }

    struct Model {
        nodes: Nodes,
        reclaim: Reclaim<1>,
        /// Slot 0's `call_rcu()` was made and its callback has not run.
        posted: AtomicBool,
    }

    impl Model {
        fn submit(&self) {
            if let Some(slot) = self.reclaim.submit() {
                assert_eq!(slot, 0);
                assert!(
                    !self.posted.swap(true, Ordering::SeqCst),
                    "slot posted twice"
                );
            }
        }

        /// The RCU callback, if one is posted.
        fn run_callback(&self) -> bool {
            if !self.posted.swap(false, Ordering::SeqCst) {
                return false;
            }
            let chain = self.reclaim.take(0);
            assert!(chain != 0, "a callback with nothing to free");
            let n = free_chain(&self.nodes, chain, |node| self.nodes.free(node));
            self.reclaim.done(0, n);
            self.submit();
            true
        }
    }

    /// Two removers queue two tables each in a context that may not sleep,
    /// one of them then waits at a yield point, and callbacks run
    /// concurrently: once the removers are done and no callback is in
    /// flight, every table was freed exactly once and nothing is pending.
    #[test]
    fn no_table_is_stranded_or_freed_twice() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let m = Arc::new(Model {
                nodes: Nodes {
                    next: core::array::from_fn(|_| AtomicUsize::new(0)),
                    freed: core::array::from_fn(|_| AtomicBool::new(false)),
                },
                reclaim: Reclaim::new(2),
                posted: AtomicBool::new(false),
            });
            let removers: [_; 2] = core::array::from_fn(|i| {
                let m = m.clone();
                thread::spawn(move || {
                    for node in [1 + 2 * i, 2 + 2 * i] {
                        m.reclaim.queue(&m.nodes, node);
                        m.submit();
                    }
                    if i == 1 && m.reclaim.over_budget() {
                        // A yield point: wait for a grace period ourselves.
                        let chain = m.reclaim.steal();
                        let n = free_chain(&m.nodes, chain, |node| m.nodes.free(node));
                        m.reclaim.freed(n);
                    }
                })
            });
            let rcu = {
                let m = m.clone();
                thread::spawn(move || {
                    // Callbacks run while removals go on.
                    m.run_callback();
                })
            };
            for r in removers {
                r.join().unwrap();
            }
            rcu.join().unwrap();
            // What rcu_barrier() does at VM teardown: run what is posted
            // until nothing is.
            while m.run_callback() {}
            for node in 1..=NODES {
                assert!(
                    m.nodes.freed[node].load(Ordering::Relaxed),
                    "node {node} stranded"
                );
            }
            let s = m.reclaim.stats();
            assert_eq!(s.pending, 0);
            assert!(s.peak >= 1 && s.peak <= NODES as u64);
            assert!(!m.reclaim.in_flight());
        });
    }
}
