// SPDX-License-Identifier: GPL-2.0

//! Dirty logging and write-protection: making leaf SPTEs read-only, or
//! clean, so that the next guest write is seen.
//!
//! A write is seen either because it faults (the Writable bit cleared; the
//! fault makes the SPTE writable again and marks the page dirty) or because
//! the CPU sets the Dirty bit, which `KVM_GET_DIRTY_LOG` then collects.
//! Which one a tree uses is [`Kvm::need_write_protect`]'s choice, as in
//! upstream: Dirty bits when the hardware has A/D bits and the CPU's dirty
//! log would not record L2 addresses.
//!
//! # Lock rules
//!
//! - [`wrprot_slot`] and [`clear_dirty_slot`] run with `mmu_lock` held for
//!   read, concurrently with faults: they change SPTEs by compare-and-
//!   exchange, retry an SPTE that changed under them, and yield the lock.
//! - [`clear_dirty_pt_masked`] and [`write_protect_gfn`] run with
//!   `mmu_lock` held for write and do not yield: each covers at most 64
//!   pages, or one. A cleared bit that the CPU may set again meanwhile is
//!   cleared atomically ([`Sptep::clear_bits`]), so no Dirty bit set by the
//!   hardware is lost.
//! - Every entry returns (or leaves to kvm.ko) the TLB flush: a stale
//!   writable translation is flushed before `KVM_GET_DIRTY_LOG` returns.
//!
//! [`Sptep::clear_bits`]: crate::kvm::Sptep::clear_bits

use crate::changes;
use crate::dirty_log::GfnMask;
use crate::kvm::{trace, Kvm, Memslot, MmuRead, MmuWrite, RootTypes, Sp, Walk};
use crate::level::Level;
use crate::roots::{self, Roots};
use crate::spte::{Spte, WRITABLE};
use crate::stats::Counter;

/// Clear the Writable bit of every leaf SPTE at or above `min_level` that
/// maps `slot`, in every valid root. Returns whether any changed (a TLB
/// flush is due).
pub(crate) fn wrprot_slot(
    kvm: &Kvm,
    lock: &mut MmuRead<'_>,
    slot: &Memslot,
    min_level: Level,
) -> bool {
    let mut changed = false;
    let mut roots = Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id()));
    while let Some(root) = roots.next(lock) {
        changed |= clear_bit_in(kvm, lock, root, slot, min_level, WRITABLE);
    }
    changed
}

/// Make every leaf SPTE mapping `slot` clean: clear its Dirty bit, or its
/// Writable bit where the tree write-protects, in every valid root.
pub(crate) fn clear_dirty_slot(kvm: &Kvm, lock: &mut MmuRead<'_>, slot: &Memslot) {
    let masks = kvm.state().masks;
    let mut roots = Roots::new(kvm, RootTypes::DIRECT, Some(slot.as_id()));
    while let Some(root) = roots.next(lock) {
        let bit = Spte::dirty_bit(&masks, kvm.need_write_protect(root));
        clear_bit_in(kvm, lock, root, slot, Level::PG_4K, bit);
    }
}

/// What clearing `bit` in a leaf SPTE counts as.
fn counter_for(bit: u64) -> Counter {
    if bit == WRITABLE {
        Counter::SptesWriteProtected
    } else {
        Counter::DirtyBitsCleared
    }
}

/// Clear `bit` in the present leaf SPTEs of `root` at or above `min_level`
/// mapping `slot`, holding `mmu_lock` for read. Returns whether any
/// changed.
fn clear_bit_in(
    kvm: &Kvm,
    lock: &mut MmuRead<'_>,
    root: Sp<'_>,
    slot: &Memslot,
    min_level: Level,
    bit: u64,
) -> bool {
    let state = kvm.state();
    let mut changed = false;
    let mut walk = Walk::new(kvm, root, min_level, slot.base_gfn(), slot.end_gfn());
    while walk.valid() {
        if walk.cond_resched(lock, false) {
            walk.next();
            continue;
        }
        let old = walk.old_spte();
        if !old.is_present() || !old.is_leaf(walk.level()) || old.0 & bit == 0 {
            walk.next();
            continue;
        }
        // Busy: the SPTE changed (a fault, the CPU's Dirty bit, a zap);
        // look at its new value.
        if changes::set_shared(lock, &mut walk, Spte(old.0 & !bit)).is_ok() {
            state.count(counter_for(bit));
            changed = true;
            walk.next();
        }
    }
    changed
}

/// Make the 4 KiB leaf SPTEs of the gfns `gfn + i` for each bit `i` of
/// `mask` clean: clear the Writable bit if `wrprot` or the tree
/// write-protects, else the Dirty bit. Holds `mmu_lock` for write.
///
/// The walk goes down once to the first 4 KiB table of the window and then
/// jumps from set bit to set bit in it: the 64 gfns of a word share one
/// table unless the memslot's base is not 64-aligned, when a second walk
/// covers the rest. Gfns mapped by a huge page, or not at all, have no 4
/// KiB SPTE and are skipped (huge pages were split before dirty logging,
/// or are write-protected as a whole by `wrprot_slot`).
pub(crate) fn clear_dirty_pt_masked(
    kvm: &Kvm,
    lock: &MmuWrite<'_>,
    slot: &Memslot,
    gfn: u64,
    mask: u64,
    wrprot: bool,
) {
    let masks = kvm.state().masks;
    let mut cleared = 0;
    roots::for_each_valid_locked(lock, slot.as_id(), |root| {
        let bit = Spte::dirty_bit(&masks, wrprot || kvm.need_write_protect(root));
        let mut pending = GfnMask::new(gfn, mask);
        while !pending.is_empty() {
            let mut walk = Walk::new(kvm, root, Level::PG_4K, pending.first(), pending.end());
            while walk.valid() && walk.level() != Level::PG_4K {
                walk.next();
            }
            if !walk.valid() {
                break;
            }
            pending.drop_below(walk.gfn());
            let table_end = Level::PG_2M.next_gfn(walk.gfn());
            while let Some(gfn) = pending.take_first_below(table_end) {
                let Some(sptep) = walk.sibling(gfn) else {
                    break;
                };
                let old = sptep.read();
                if old.is_present() && old.0 & bit != 0 {
                    let old = sptep.clear_bits(lock, old, bit);
                    trace::spte_changed(root.as_id(), gfn, Level::PG_4K, old, Spte(old.0 & !bit));
                    cleared += 1;
                }
            }
        }
        if cleared != 0 {
            kvm.state().add(counter_for(bit), cleared);
            cleared = 0;
        }
    });
}

/// Write-protect the leaf SPTE mapping `gfn` at or above `min_level` in
/// every valid root for good (also not MMU-writable: only a fault may make
/// it writable again, after KVM's write tracking allows it). Holds
/// `mmu_lock` for write. Returns whether any changed (a TLB flush is due).
pub(crate) fn write_protect_gfn(
    kvm: &Kvm,
    lock: &MmuWrite<'_>,
    slot: &Memslot,
    gfn: u64,
    min_level: Level,
) -> bool {
    let masks = kvm.state().masks;
    let mut changed = false;
    roots::for_each_valid_locked(lock, slot.as_id(), |root| {
        let mut walk = Walk::new(kvm, root, min_level, gfn, gfn + 1);
        while walk.valid() {
            let old = walk.old_spte();
            if old.is_present() && old.is_leaf(walk.level()) {
                let new = old.write_protected(&masks);
                if new == old {
                    break;
                }
                changes::set_exclusive(lock, &mut walk, new);
                kvm.state().count(Counter::SptesWriteProtected);
                changed = true;
            }
            walk.next();
        }
    });
    changed
}
