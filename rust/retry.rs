// SPDX-License-Identifier: GPL-2.0

//! Whether a page fault must retry because of an MMU notifier invalidation:
//! the invalidation hooks of `struct kvm_tdp_mmu_ops` feed the VM's
//! [`Invalidations`], and the fault path asks it instead of
//! `mmu_invalidate_retry_gfn()`.
//!
//! # Invariants
//!
//! With `mmu_lock` held, a fault retries whenever its gfn is inside an
//! invalidation in progress or the invalidation sequence moved since it
//! looked up its pfn: [`Invalidations::contains`] has no false negatives,
//! and the sequence is kvm.ko's own (`mmu_invalidate_seq`), which
//! `kvm_mmu_invalidate_end()` bumps before the count drops.

use crate::invalidations::Invalidations;
use crate::kvm::Kvm;
use crate::vm::Stats;

/// `kvm_mmu_invalidate_start()` ran, `mmu_lock` held for write.
pub(crate) fn start(kvm: &Kvm) {
    kvm.state().invalidations.start();
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
    let inv: &Invalidations = &state.invalidations;
    let in_range = if locked {
        inv.contains(gfn)
    } else {
        inv.contains_racy(gfn)
    };
    if in_range {
        if locked {
            Stats::count(&state.stats.retries_range);
        }
        return true;
    }
    if kvm.invalidate_seq() != mmu_seq {
        if locked {
            Stats::count(&state.stats.retries_seq);
        }
        return true;
    }
    if locked && inv.in_progress() && kvm.invalidate_union_contains(gfn) {
        // Upstream's single widened range would have retried this fault.
        Stats::count(&state.stats.retries_avoided);
    }
    false
}
