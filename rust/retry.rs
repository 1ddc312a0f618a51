// SPDX-License-Identifier: GPL-2.0

//! Whether a page fault must retry because of an MMU notifier invalidation:
//! the invalidation hooks of `struct kvm_tdp_mmu_ops` feed the VM's
//! [`Invalidations`], and the fault path asks it instead of
//! `mmu_invalidate_retry_gfn()`.
//!
//! # Invariants
//!
//! With `mmu_lock` held, a fault retries whenever its gfn is inside an
//! invalidation in progress, or inside one that ended since the fault read
//! kvm.ko's sequence (`mmu_invalidate_seq`, which `kvm_mmu_invalidate_end()`
//! bumps), or an invalidation ended since then whose range is no longer
//! known: [`Invalidations::must_retry`] has no false negatives.

use crate::invalidations::Retry;
use crate::kvm::{Kvm, MmuHeld, MmuLocked, MmuWrite};
use crate::stats::Counter;

/// `kvm_mmu_invalidate_start()` ran.
pub(crate) fn start(lock: &MmuWrite<'_>) {
    let kvm = lock.kvm();
    kvm.state().invalidations.start(kvm.invalidate_seq());
}

/// `kvm_mmu_invalidate_range_add()` ran.
pub(crate) fn range_add(lock: &MmuWrite<'_>, start: u64, end: u64) {
    lock.kvm().state().invalidations.add(start, end);
}

/// `kvm_mmu_invalidate_end()` ran.
pub(crate) fn end(lock: &MmuWrite<'_>) {
    lock.kvm().state().invalidations.end();
}

/// The lockless pre-check of a fault on `gfn` that looked up its pfn at
/// sequence `mmu_seq`: whether it will likely have to retry. Racy reads
/// may err either way; the fault asks [`must_retry`] again under the lock.
pub(crate) fn may_retry(kvm: &Kvm, mmu_seq: u64, gfn: u64) -> bool {
    let inv = &kvm.state().invalidations;
    inv.must_retry(gfn, mmu_seq, kvm.invalidate_seq()) != Retry::No
}

/// Whether a fault on `gfn` that looked up its pfn at sequence `mmu_seq`
/// must retry: the final answer, `mmu_lock` held.
pub(crate) fn must_retry(lock: &MmuLocked<'_>, mmu_seq: u64, gfn: u64) -> bool {
    let kvm = lock.kvm();
    let state = kvm.state();
    let inv = &state.invalidations;
    let current = kvm.invalidate_seq();
    let answer = inv.must_retry(gfn, mmu_seq, current);
    state.count(Counter::RetryChecks);
    match answer {
        Retry::InRange => {
            state.count(Counter::RetriesRange);
            true
        }
        Retry::Sequence => {
            state.count(Counter::RetriesSeq);
            true
        }
        Retry::No => {
            if current != mmu_seq || (inv.in_progress() && kvm.invalidate_union_contains(lock, gfn))
            {
                // Upstream's widened range or sequence check would retry.
                state.count(Counter::RetriesAvoided);
            }
            false
        }
    }
}
