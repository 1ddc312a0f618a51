// SPDX-License-Identifier: GPL-2.0

//! Page tables and pointers to their SPTEs.
//!
//! A [`Table`] or [`Sptep`] borrows what keeps its table alive (a walk's
//! RCU section, a root reference, ownership of a removed or new table).
//! SPTEs are read and changed atomically; an exchange that unlinks a table
//! hands it over as a [`RemovedSp`] in its [`Replaced`], so that exactly one
//! thread owns each removed table.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::bindings;

use super::{MmuRead, MmuWrite, RemovedSp, Sp};
use crate::freeze;
use crate::iter;
use crate::level::{Level, SPTE_ENT_PER_PAGE};
use crate::spte::{Spte, FROZEN};

/// A page table: 512 SPTEs at one level.
///
/// # Invariants
///
/// `ptr` is a live, page-aligned TDP MMU page table at `level` that stays
/// allocated for `'a`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table<'a> {
    ptr: NonNull<u64>,
    level: Level,
    _life: PhantomData<&'a [AtomicU64; SPTE_ENT_PER_PAGE]>,
}

impl<'a> Table<'a> {
    /// # Safety
    ///
    /// `ptr` is a TDP MMU page table at `level`, allocated for `'a`.
    pub(super) unsafe fn from_raw(ptr: NonNull<u64>, level: Level) -> Self {
        // INVARIANT: the caller's guarantee.
        Table {
            ptr,
            level,
            _life: PhantomData,
        }
    }

    pub(super) fn ptr(self) -> NonNull<u64> {
        self.ptr
    }

    /// The level of the table's SPTEs.
    #[inline]
    pub(crate) fn level(self) -> Level {
        self.level
    }

    /// SPTE `index` of the table.
    #[inline]
    pub(crate) fn sptep(self, index: usize) -> Sptep<'a> {
        assert!(index < SPTE_ENT_PER_PAGE);
        // SAFETY: in bounds of the table's page, which lives for `'a`.
        unsafe { Sptep::from_raw(self.ptr.add(index), self.level) }
    }

    /// The table's header.
    #[inline]
    pub(crate) fn header(self) -> Sp<'a> {
        // SAFETY: a TDP MMU table alive for `'a` (type invariant).
        unsafe { Sp::of_table(self.ptr) }
    }

    /// The physical address, as the hardware and `kvm_mmu.root.hpa` see it.
    pub(crate) fn phys(self) -> u64 {
        super::direct_map::virt_to_phys(self.ptr.as_ptr())
    }

    /// Whether the non-leaf `spte` at the level above links this table.
    pub(crate) fn is_linked_by(self, spte: Spte) -> bool {
        let Some(upper) = self.level.upper() else {
            return false;
        };
        spte.is_present()
            && !spte.is_leaf(upper)
            && super::direct_map::table_address(spte) == self.phys()
    }
}

/// A pointer to one SPTE, at a known level.
///
/// # Invariants
///
/// `ptr` points into a [`Table`] at `level` that stays allocated for `'a`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sptep<'a> {
    ptr: NonNull<u64>,
    level: Level,
    _life: PhantomData<&'a AtomicU64>,
}

/// The value an exchange replaced, and the table it unlinked, if any: a
/// present non-leaf value replaced by one that does not link the same
/// table.
///
/// # Invariants
///
/// Made only by this file, from the value an atomic operation on the SPTE
/// returned (or, under the write lock, read before a store that nobody else
/// could race): `old` was in memory, and `removed` is the table it linked,
/// which that operation unlinked.
#[must_use = "a replaced table must be torn down"]
pub(crate) struct Replaced {
    old: Spte,
    removed: Option<RemovedSp>,
}

impl Replaced {
    /// The value replaced.
    #[inline]
    pub(crate) fn old(&self) -> Spte {
        self.old
    }

    /// Whether the exchange unlinked a table.
    #[inline]
    pub(crate) fn unlinked(&self) -> bool {
        self.removed.is_some()
    }

    /// The value replaced, and the table it unlinked, whose teardown is now
    /// the caller's.
    #[inline]
    pub(crate) fn into_parts(self) -> (Spte, Option<RemovedSp>) {
        (self.old, self.removed)
    }
}

impl<'a> Sptep<'a> {
    /// # Safety
    ///
    /// `ptr` points into a TDP MMU page table at `level` allocated for
    /// `'a`.
    pub(super) unsafe fn from_raw(ptr: NonNull<u64>, level: Level) -> Self {
        // INVARIANT: the caller's guarantee.
        Sptep {
            ptr,
            level,
            _life: PhantomData,
        }
    }

    pub(super) fn raw(self) -> *mut u64 {
        self.ptr.as_ptr()
    }

    /// The SPTE's address, for kvm.ko's fast page fault, which uses it
    /// inside the RCU section that keeps it alive.
    pub(crate) fn as_ptr(self) -> *mut u64 {
        self.ptr.as_ptr()
    }

    #[inline]
    fn cell(&self) -> &'a AtomicU64 {
        // What `AtomicU64::from_ptr` does, which rustc 1.85 does not inline:
        // a call per SPTE access.
        // SAFETY: a live, aligned SPTE for `'a`; every concurrent access to
        // SPTEs is atomic or READ_ONCE/WRITE_ONCE-sized.
        unsafe { &*self.ptr.as_ptr().cast::<AtomicU64>() }
    }

    /// The level of the SPTE.
    #[inline]
    pub(crate) fn level(self) -> Level {
        self.level
    }

    /// The header of the table the SPTE is in.
    #[inline]
    pub(crate) fn sp(self) -> Sp<'a> {
        let base = (self.ptr.as_ptr() as usize) & !(bindings::PAGE_SIZE - 1);
        // SAFETY: the page holding a table entry is the table (type
        // invariant), alive for `'a`; not null, being a page of it.
        unsafe { Sp::of_table(NonNull::new_unchecked(base as *mut u64)) }
    }

    /// Read the SPTE once.
    #[inline]
    pub(crate) fn read(self) -> Spte {
        Spte(self.cell().load(Ordering::Relaxed))
    }

    /// What replacing `old` by `new` here unlinks; `old` is the value an
    /// atomic operation or an unraced store under the write lock replaced.
    #[inline]
    fn replaced(self, old: Spte, new: Spte) -> Replaced {
        let unlinks = old.is_present()
            && !old.is_leaf(self.level)
            && (!new.is_present() || new.is_leaf(self.level) || new.pfn() != old.pfn());
        let removed = unlinks.then(|| {
            let table = super::direct_map::phys_to_virt(super::direct_map::table_address(old));
            // SAFETY: `old` is the value this SPTE held until the operation
            // that called this replaced it (every caller passes the value
            // the hardware exchange returned, or the one read under the
            // write lock before a store nobody could race); it linked a
            // table that `new` does not, so nothing links that table now
            // and only this thread knows. Tables live until a grace period
            // after they are removed.
            unsafe { RemovedSp::of_table(NonNull::new_unchecked(table)) }
        });
        Replaced { old, removed }
    }

    /// Store `new` if the SPTE holds `old`; else the current value.
    #[inline]
    pub(crate) fn cmpxchg(self, old: Spte, new: Spte) -> Result<Replaced, Spte> {
        match self
            .cell()
            .compare_exchange(old.0, new.0, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.replaced(old, new)),
            Err(current) => Err(Spte(current)),
        }
    }

    /// Store `new` holding `mmu_lock` for write, where the caller last read
    /// `expected`: a plain store unless the CPU or the fast page fault can
    /// set bits in the value meanwhile. What is unlinked comes from the
    /// value actually replaced, never from `expected`: a caller's stale or
    /// wrong value cannot free a table that is still linked. A value that
    /// differs from `expected` in more than the bits others may set is a
    /// bug of the caller, reported.
    #[inline]
    pub(crate) fn write(self, _lock: &MmuWrite<'_>, expected: Spte, new: Spte) -> Replaced {
        // Under the write lock only the bits of a present leaf change
        // behind our back (Accessed, Dirty, the fast page fault's Writable),
        // so this value decides whether the store must be atomic.
        let current = self.read();
        let old = if Self::needs_atomic_update(current, self.level) {
            Spte(self.cell().swap(new.0, Ordering::SeqCst))
        } else {
            // Nobody else writes the SPTE: `current` is what is replaced.
            self.cell().store(new.0, Ordering::Relaxed);
            current
        };
        kernel::warn_on!(self.linked(old) != self.linked(expected));
        self.replaced(old, new)
    }

    /// The physical address of the table `spte` links from here, if it is
    /// a present non-leaf value.
    #[inline]
    fn linked(self, spte: Spte) -> Option<u64> {
        (spte.is_present() && !spte.is_leaf(self.level))
            .then(|| super::direct_map::table_address(spte))
    }

    /// Change `old` to `new` in three steps, holding `mmu_lock` for read:
    /// freeze the SPTE if it still holds `old` (so no fault builds under
    /// it or changes it), run `while_frozen` on what is replaced, then
    /// store `new`, or `old` back if `while_frozen` failed.
    pub(crate) fn change_frozen<E>(
        self,
        _lock: &MmuRead<'_>,
        old: Spte,
        new: Spte,
        while_frozen: impl FnOnce(Replaced) -> Result<(), E>,
    ) -> Result<(), freeze::NotChanged<E>> {
        freeze::change_frozen(self.cell(), old, new, || {
            while_frozen(self.replaced(old, Spte(FROZEN)))
        })
    }

    /// Freeze an entry of a removed table for good, waiting for a freeze
    /// in progress to end; what it replaced.
    pub(crate) fn freeze_removed(self) -> Replaced {
        let old = freeze::freeze_removed(self.cell(), core::hint::spin_loop);
        self.replaced(old, Spte(FROZEN))
    }

    /// Clear `bits` in the leaf SPTE, which held `old`, holding `mmu_lock`
    /// for write (`tdp_mmu_clear_spte_bits()`): atomically when the CPU may
    /// set bits in it meanwhile. Returns the value replaced. The SPTE stays
    /// what it was, so nothing is unlinked.
    pub(crate) fn clear_bits(self, _lock: &MmuWrite<'_>, old: Spte, bits: u64) -> Spte {
        kernel::warn_on!(old.is_present() && !old.is_leaf(self.level));
        // A mirrored leaf changes only with the external page table.
        kernel::warn_on!(old.is_mirrored());
        if Self::needs_atomic_update(old, self.level) {
            Spte(self.cell().fetch_and(!bits, Ordering::SeqCst))
        } else {
            self.cell().store(old.0 & !bits, Ordering::Relaxed);
            old
        }
    }

    /// Whether the SPTE's value needs an atomic write because the CPU or
    /// the fast page fault can set bits in it outside `mmu_lock`.
    pub(crate) fn needs_atomic_update(old: Spte, level: Level) -> bool {
        old.is_present()
            && old.is_leaf(level)
            // SAFETY: a pure function of the value.
            && unsafe { bindings::spte_needs_atomic_update(old.0) }
    }
}

/// A table as the iterator holds it: no lifetime, read only by the walks
/// of `super::walk` within the RCU section that keeps it alive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct RawTable(pub(super) NonNull<u64>);

/// How [`crate::iter::TdpIter`] reads kernel page tables.
///
/// # Invariants
///
/// Used only by walks inside an RCU read-side section in which every table
/// the iterator reaches stays allocated.
pub(super) struct KernelTables;

impl iter::Tables for KernelTables {
    type Table = RawTable;

    #[inline]
    fn read(&self, table: RawTable, index: usize) -> u64 {
        // SAFETY: `index` is below 512 (the iterator's invariant) and the
        // table alive (type invariant); SPTEs are read atomically.
        unsafe { (*table.0.as_ptr().add(index).cast::<AtomicU64>()).load(Ordering::Relaxed) }
    }

    #[inline]
    fn child(&self, spte: Spte) -> Option<RawTable> {
        // Page tables are direct-map pages; the iterator asks only for the
        // child of a present non-leaf SPTE, which is never at address 0.
        let virt = super::direct_map::phys_to_virt(super::direct_map::table_address(spte));
        let child = NonNull::new(virt).map(RawTable);
        kernel::warn_on!(child.is_none());
        child
    }
}
