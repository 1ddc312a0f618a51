// SPDX-License-Identifier: GPL-2.0

//! Walks over the SPTEs of one root that cover a range of gfns: the
//! iterator of `crate::iter` on kernel page tables, inside the RCU
//! read-side section that keeps every table it reaches alive.
//!
//! A [`Walk`] owns its section: it may end it to yield `mmu_lock` or sleep,
//! which takes the walk by `&mut`, so no handle from before the yield
//! survives it, and re-walks from the root afterwards. An [`RcuWalk`] runs
//! inside its caller's section, which it borrows, and cannot yield. Both
//! give out [`Sptep`], [`Table`] and [`Sp`] handles that borrow them.

use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use kernel::sync::rcu;

use super::rcu::RcuSection;
use super::table::{KernelTables, RawTable};
use super::vm::need_resched;
use super::{Kvm, MmuHeld, MmuWrite, Replaced, Sp, Sptep, Table};
use crate::iter::{self, TdpIter};
use crate::level::{Level, SPTE_LEVEL_BITS};
use crate::spte::Spte;

/// What both kinds of walk have: the iterator and the end of the range.
///
/// # Invariants
///
/// Only reachable through a [`Walk`] or [`RcuWalk`] (by shared reference):
/// while it is borrowed, the RCU section in which the iterator reached its
/// tables is held.
pub(crate) struct Cursor {
    iter: TdpIter<KernelTables>,
    end: u64,
}

impl Cursor {
    #[inline]
    fn start(kvm: &Kvm, root: Sp<'_>, min_level: Level, start: u64, end: u64) -> Self {
        // The role is read once: the table carries the root's level.
        let table = root.table();
        let raw = RawTable(table.ptr());
        // Refused only for a minimum level above the root's: a corrupted
        // role, reported; the walk then covers nothing, as tdp_iter.c's.
        let bits = kvm.gfn_root_bits(root);
        let iter = TdpIter::start(&KernelTables, raw, table.level(), min_level, start, bits)
            .unwrap_or_else(|| {
                kernel::warn_on!(true);
                TdpIter::empty(raw, table.level())
            });
        Cursor { iter, end }
    }

    /// Move to the next SPTE of the range in pre-order; the walk ends at
    /// the range's last SPTE.
    #[inline]
    fn next(&mut self) {
        self.iter.next_until(&KernelTables, self.end);
    }

    /// Step down through present links to `stop` at most
    /// (`TdpIter::descend`), if the walk is still in its range.
    #[inline]
    fn descend(&mut self, stop: Level) {
        if self.valid() {
            self.iter.descend(&KernelTables, stop);
        }
    }

    /// At the walk's lowest level, move to the next SPTE of the current
    /// table in the range that `want` accepts, if any (`TdpIter::seek`):
    /// one load per SPTE passed over instead of one step.
    #[inline]
    fn seek(&mut self, want: impl FnMut(Spte) -> bool) -> bool {
        self.iter.seek(&KernelTables, self.end, want)
    }

    /// Whether the walk is on an SPTE of the range.
    #[inline]
    pub(crate) fn valid(&self) -> bool {
        self.iter.valid() && self.iter.gfn() < self.end
    }

    #[inline]
    pub(crate) fn gfn(&self) -> u64 {
        self.iter.gfn()
    }

    #[inline]
    pub(crate) fn level(&self) -> Level {
        self.iter.level()
    }

    /// The SPTE as read when the walk moved to it (or as last refreshed).
    #[inline]
    pub(crate) fn old_spte(&self) -> Spte {
        self.iter.old_spte()
    }

    /// The table the walk is on.
    #[inline]
    pub(crate) fn table(&self) -> Table<'_> {
        let (table, _) = self.iter.position();
        // SAFETY: reached in the section held while `self` is borrowed
        // (type invariant), at the walk's level.
        unsafe { Table::from_raw(table.0, self.iter.level()) }
    }

    /// The current SPTE.
    #[inline]
    pub(crate) fn sptep(&self) -> Sptep<'_> {
        let (_, index) = self.iter.position();
        self.table().sptep(index)
    }

    /// The SPTE for `gfn` in the table the walk is on, at the walk's
    /// level, or `None` when `gfn` maps through another table.
    #[inline]
    pub(crate) fn sibling(&self, gfn: u64) -> Option<Sptep<'_>> {
        let level = self.iter.level();
        let span = level.gfn_shift() + SPTE_LEVEL_BITS;
        if span < u64::BITS && gfn >> span != self.iter.gfn() >> span {
            return None;
        }
        Some(self.table().sptep(level.spte_index(gfn)))
    }

    /// The header of the table that the current SPTE links, if it is a
    /// present non-leaf SPTE.
    pub(crate) fn child(&self) -> Option<Sp<'_>> {
        let spte = self.old_spte();
        if !spte.is_present() || spte.is_leaf(self.level()) {
            return None;
        }
        let virt = super::direct_map::phys_to_virt(super::direct_map::table_address(spte));
        // SAFETY: the table a present non-leaf SPTE read in this section
        // linked stays allocated until the section ends (freed only after a
        // grace period), and the section is held while `self` is borrowed.
        Some(unsafe { Sp::of_table(NonNull::new_unchecked(virt)) })
    }
}

/// [`Walk::cond_resched`] asks whether a task or a writer waits at every
/// `RESCHED_INTERVAL`-th step, not at every step as the C MMU does: the
/// question is two calls into C (`need_resched()` and
/// `rwlock_needbreak()` are inline in C, helpers for Rust), 27 guest
/// instructions per SPTE zapped (`make profile P=demand_paging`). A step
/// is at most a few hundred instructions, so a waiter is answered at most
/// a few thousand instructions later than on C.
const RESCHED_INTERVAL: u8 = 8;

/// A walk in its own RCU section, which it may end to yield.
///
/// # Invariants
///
/// `guard` is `Some` except inside the yielding methods (which hold the walk
/// by `&mut`), and the iterator is marked yielded whenever the section was
/// released since its last step.
pub(crate) struct Walk<'a> {
    kvm: &'a Kvm,
    cursor: Cursor,
    guard: Option<rcu::Guard>,
    /// Where the walk last waited for a grace period because of the
    /// reclaim budget: it takes a step before it waits again.
    waited_at: Option<u64>,
    /// Calls of [`Walk::cond_resched`] until it next asks the scheduler
    /// and the lock.
    resched_countdown: u8,
    /// The root, kept alive by the caller across yields.
    _root: PhantomData<Sp<'a>>,
}

impl Deref for Walk<'_> {
    type Target = Cursor;

    #[inline]
    fn deref(&self) -> &Cursor {
        &self.cursor
    }
}

impl<'a> Walk<'a> {
    /// Walk `[start, end)` under `root`, a root of `kvm`, down to
    /// `min_level`. `root` borrows what keeps it alive across yields (a
    /// reference, the vCPU's use of it).
    #[inline]
    pub(crate) fn new(kvm: &'a Kvm, root: Sp<'a>, min_level: Level, start: u64, end: u64) -> Self {
        let guard = rcu::read_lock();
        // INVARIANT: the walk owns the section it reads the root in.
        Walk {
            kvm,
            cursor: Cursor::start(kvm, root, min_level, start, end),
            guard: Some(guard),
            waited_at: None,
            resched_countdown: RESCHED_INTERVAL,
            _root: PhantomData,
        }
    }

    /// The VM.
    #[inline]
    pub(crate) fn kvm(&self) -> &'a Kvm {
        self.kvm
    }

    /// Move to the next SPTE of the range in pre-order (from the root after
    /// a yield); the walk ends at the range's last SPTE.
    #[inline]
    pub(crate) fn next(&mut self) {
        self.cursor.next();
    }

    /// See [`Cursor::descend`].
    #[inline]
    pub(crate) fn descend(&mut self, stop: Level) {
        self.cursor.descend(stop);
    }

    /// See [`Cursor::seek`].
    #[inline]
    pub(crate) fn seek(&mut self, want: impl FnMut(Spte) -> bool) -> bool {
        self.cursor.seek(want)
    }

    /// Read the current SPTE again, after a change of it failed.
    #[inline]
    pub(crate) fn reread(&mut self) {
        let spte = self.cursor.sptep().read();
        // INVARIANT: a value read from the walk's SPTE in its section.
        self.cursor.iter.set_old_spte(spte);
    }

    /// Store `new` in the current SPTE holding `mmu_lock` for write
    /// ([`Sptep::write`]); the walk records the value replaced, as C's
    /// `tdp_mmu_iter_set_spte()` does.
    #[inline]
    pub(crate) fn write(&mut self, lock: &MmuWrite<'_>, new: Spte) -> Replaced {
        self.assert_locked_by(lock);
        let replaced = self.cursor.sptep().write(lock, self.cursor.old_spte(), new);
        // INVARIANT: the value the SPTE held until this store.
        self.cursor.iter.set_old_spte(replaced.old());
        replaced
    }

    /// A walk of the table `child`, reached by this walk, inside this walk's
    /// section: it cannot outlive the section, or this walk's next step.
    pub(crate) fn sub_walk<'s>(
        &'s self,
        child: Sp<'s>,
        min_level: Level,
        start: u64,
        end: u64,
    ) -> RcuWalk<'s> {
        let section = self.guard.as_ref().expect("a walk holds its RCU section");
        RcuWalk::new(self.kvm, section, child, min_level, start, end)
    }

    /// Stop unless `lock` is the walk's VM's `mmu_lock`: another VM's lock
    /// excludes nobody from these tables (as `LockedBy::access` checks its
    /// owner).
    #[inline]
    pub(crate) fn assert_locked_by(&self, lock: &impl MmuHeld) {
        assert!(
            core::ptr::eq(lock.kvm(), self.kvm),
            "kvm_rtdp: a walk of one VM given another VM's mmu_lock"
        );
    }

    /// Whether the walk should give up `mmu_lock` and the CPU: somebody
    /// waits, and the walk moved since it last yielded.
    pub(crate) fn need_resched(&self) -> bool {
        (need_resched() || self.kvm.mmu_lock_contended())
            && self.cursor.iter.next_last_level_gfn() != self.cursor.iter.yielded_gfn()
    }

    /// Whether the walk must wait for a grace period before its next step:
    /// the VM has as many removed tables waiting as its budget allows, and
    /// the walk has not waited at this position yet. Checked before every
    /// step, so a walk that removes at most one table per step never takes
    /// the VM over its budget.
    #[inline]
    fn must_wait(&self) -> bool {
        self.waited_at != Some(self.cursor.iter.next_last_level_gfn())
            && self.kvm.state().reclaim.accounting().over_budget()
    }

    /// Yield `lock` and the CPU if needed, flushing the TLBs first when
    /// `flush`; when the VM is over its reclaim budget, wait for a grace
    /// period with the lock dropped. True when it yielded: the caller moves
    /// on with [`Walk::next`], which re-walks from the root.
    ///
    /// Inline: the common answer, no, costs a countdown and the budget
    /// check; asking C and yielding are out of line.
    #[inline]
    pub(crate) fn cond_resched(&mut self, lock: &mut impl MmuHeld, flush: bool) -> bool {
        if !self.must_wait() {
            // Cannot wrap: reset to `RESCHED_INTERVAL` whenever it hits 0.
            self.resched_countdown -= 1;
            if self.resched_countdown != 0 {
                return false;
            }
        }
        self.cond_resched_slow(lock, flush)
    }

    #[cold]
    #[inline(never)]
    fn cond_resched_slow(&mut self, lock: &mut impl MmuHeld, flush: bool) -> bool {
        let wait = self.must_wait();
        if !wait {
            self.resched_countdown = RESCHED_INTERVAL;
            if !self.need_resched() {
                return false;
            }
        }
        self.yield_lock(lock, flush, wait);
        true
    }

    /// The walk is over: if the VM is over its reclaim budget, wait for a
    /// grace period before the caller removes anything else (a root).
    pub(crate) fn finish(mut self, lock: &mut impl MmuHeld) {
        if self.must_wait() {
            self.yield_lock(lock, false, true);
        }
    }

    /// Run `f`, which may sleep, with `lock` and the walk's RCU section
    /// released; the caller moves on with [`Walk::next`], which re-walks
    /// from the root.
    pub(crate) fn with_lock_dropped<T>(
        &mut self,
        lock: &mut impl MmuHeld,
        f: impl FnOnce() -> T,
    ) -> T {
        kernel::warn_on!(!core::ptr::eq(lock.kvm(), self.kvm));
        // INVARIANT: marked yielded before the section ends, retaken after.
        self.cursor.iter.set_yielded();
        drop(self.guard.take());
        let result = lock.with_dropped(f);
        self.guard = Some(rcu::read_lock());
        result
    }

    fn yield_lock(&mut self, lock: &mut impl MmuHeld, flush: bool, wait: bool) {
        if flush {
            self.kvm.flush_remote_tlbs();
        }
        if wait {
            self.waited_at = Some(self.cursor.iter.next_last_level_gfn());
            let reclaim = &self.kvm.state().reclaim;
            self.with_lock_dropped(lock, || reclaim.wait_for_grace_period());
            return;
        }
        kernel::warn_on!(!core::ptr::eq(lock.kvm(), self.kvm));
        // INVARIANT: marked yielded before the section ends, retaken after.
        self.cursor.iter.set_yielded();
        drop(self.guard.take());
        lock.cond_resched();
        self.guard = Some(rcu::read_lock());
    }
}

/// A walk inside its caller's RCU section, borrowed for `'a`, so the walk
/// has no way to end it and none of the methods that yield. The walks of a
/// lockless pass over all roots (aging) use it, one `rcu_read_lock()` for
/// the pass instead of one more per root, and so do the lockless walks
/// kvm.ko starts inside its own section ([`super::CallerRcu`]).
pub(crate) struct RcuWalk<'a> {
    cursor: Cursor,
    _section: PhantomData<&'a ()>,
}

impl Deref for RcuWalk<'_> {
    type Target = Cursor;

    #[inline]
    fn deref(&self) -> &Cursor {
        &self.cursor
    }
}

impl<'a> RcuWalk<'a> {
    /// Walk `[start, end)` under `root` down to `min_level` inside the
    /// caller's RCU section `_rcu`, in which the caller found `root`.
    pub(crate) fn new(
        kvm: &'a Kvm,
        _rcu: &'a impl RcuSection,
        root: Sp<'a>,
        min_level: Level,
        start: u64,
        end: u64,
    ) -> Self {
        // INVARIANT: `_rcu` is borrowed for as long as the walk lives.
        RcuWalk {
            cursor: Cursor::start(kvm, root, min_level, start, end),
            _section: PhantomData,
        }
    }

    /// Move to the next SPTE of the range in pre-order; the walk ends at
    /// the range's last SPTE.
    #[inline]
    pub(crate) fn next(&mut self) {
        self.cursor.next();
    }

    /// See [`Cursor::descend`].
    #[inline]
    pub(crate) fn descend(&mut self, stop: Level) {
        self.cursor.descend(stop);
    }

    /// See [`Cursor::seek`].
    #[inline]
    pub(crate) fn seek(&mut self, want: impl FnMut(Spte) -> bool) -> bool {
        self.cursor.seek(want)
    }
}

/// The last SPTE on the way to `gfn` under `root`, down to `min_level`,
/// and its value (`iter::last_on_path`): for lookups of one gfn that look
/// at nothing else on the way. Inside the caller's section `_rcu`, in
/// which the caller found `root`; the SPTE is valid for all of it.
#[inline]
pub(crate) fn last_on_path<'a>(
    kvm: &Kvm,
    _rcu: &'a impl RcuSection,
    root: Sp<'a>,
    min_level: Level,
    gfn: u64,
) -> Option<(Sptep<'a>, Spte)> {
    let table = root.table();
    let (last, index, level, spte) = iter::last_on_path(
        &KernelTables,
        RawTable(table.ptr()),
        table.level(),
        min_level,
        gfn | kvm.gfn_root_bits(root),
    )?;
    // SAFETY: `last` is `root`'s table or one reached from it through
    // links read in the section borrowed for `'a`, which keeps it
    // allocated; `level` is its level.
    let table = unsafe { Table::from_raw(last.0, level) };
    Some((table.sptep(index), spte))
}
