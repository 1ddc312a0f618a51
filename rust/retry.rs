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

#![deny(unsafe_code)]

use crate::invalidations::Retry;
use crate::kvm::Kvm;
use crate::stats::Counter;

/// `kvm_mmu_invalidate_start()` ran, `mmu_lock` held for write.
pub(crate) fn start(kvm: &Kvm) {
    kvm.state().invalidations.start(kvm.invalidate_seq());
}

/// `kvm_mmu_invalidate_range_add()` ran, `mmu_lock` held for write.
pub(crate) fn range_add(kvm: &Kvm, start: u64, end: u64) {
    kvm.state().invalidations.add(start, end);
}

/// `kvm_mmu_invalidate_end()` ran, `mmu_lock` held for write.
pub(crate) fn end(kvm: &Kvm) {
    kvm.state().invalidations.end();
}

/// Whether a fault on `gfn` that looked up its pfn at sequence `mmu_seq`
/// must retry. `locked`: `mmu_lock` is held and the answer is final;
/// otherwise this is a pre-check that may err either way.
pub(crate) fn must_retry(kvm: &Kvm, mmu_seq: u64, gfn: u64, locked: bool) -> bool {
    let state = kvm.state();
    let inv = &state.invalidations;
    let current = kvm.invalidate_seq();
    let answer = inv.must_retry(gfn, mmu_seq, current);
    if !locked {
        // Racy reads may err either way; the fault checks again locked.
        return answer != Retry::No;
    }
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
            if current != mmu_seq || (inv.in_progress() && kvm.invalidate_union_contains(gfn)) {
                // Upstream's widened range or sequence check would retry.
                state.count(Counter::RetriesAvoided);
            }
            false
        }
    }
}
