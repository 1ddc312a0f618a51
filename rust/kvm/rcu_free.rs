// SPDX-License-Identifier: GPL-2.0

//! Deferred freeing of removed page tables: per VM, a few RCU callbacks
//! in flight, each freeing a chain of tables (the accounting is
//! `crate::reclaim`'s).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::rcu;
use kernel::types::Opaque;

use super::sp::TABLES;
use crate::reclaim;

/// Page tables waiting for a grace period, over all VMs, and the most there
/// have been at once (`kvm_rtdp/rcu`).
pub(super) static RCU_PENDING: AtomicU64 = AtomicU64::new(0);
pub(super) static RCU_PEAK: AtomicU64 = AtomicU64::new(0);

/// RCU callbacks a VM may have in flight at once.
pub(crate) const RECLAIM_SLOTS: usize = 4;

/// Chains of removed tables, linked through the `next` word of their
/// `possible_nx_huge_page_link`: a removed page is off the
/// possible-NX-huge-page list for good (`crate::pages::unlinked`), and
/// neither kvm.ko nor this module looks at that member again.
struct SpLinks;

impl reclaim::Links for SpLinks {
    fn next(&self, node: usize) -> usize {
        let sp = node as *mut bindings::kvm_mmu_page;
        // SAFETY: `node` is a removed page owned by the chain's holder.
        unsafe { (*sp).possible_nx_huge_page_link.next as usize }
    }

    fn set_next(&self, node: usize, next: usize) {
        let sp = node as *mut bindings::kvm_mmu_page;
        // SAFETY: as in `next`; only the page's owner links it.
        unsafe { (*sp).possible_nx_huge_page_link.next = next as *mut bindings::list_head };
    }
}

/// The RCU head of one of a VM's reclaim slots.
#[pin_data]
struct Batch {
    #[pin]
    head: Opaque<bindings::callback_head>,
    index: usize,
}

/// A VM's deferred freeing of removed page tables (`crate::reclaim`): the
/// accounting, and one RCU head per slot.
///
/// # Invariants
///
/// `batches[i].index == i`. The value is pinned (made only in place, by
/// [`Reclaimer::new`]), so its heads do not move while `call_rcu()` holds
/// them, and its drop waits for every callback of its slots.
#[pin_data(PinnedDrop)]
pub(crate) struct Reclaimer {
    core: reclaim::Reclaim<RECLAIM_SLOTS>,
    #[pin]
    batches: [Batch; RECLAIM_SLOTS],
}

// SAFETY: the RCU heads are used only by `call_rcu()` for slots the
// accounting hands out to one thread at a time; the rest is atomics.
unsafe impl Send for Reclaimer {}
// SAFETY: as above.
unsafe impl Sync for Reclaimer {}

impl Reclaimer {
    /// Nothing pending, `budget` tables allowed to wait before paths that
    /// may sleep wait for a grace period themselves.
    pub(crate) fn new(budget: u64) -> impl PinInit<Self> {
        pin_init!(Reclaimer {
            core: reclaim::Reclaim::new(budget),
            // INVARIANT: slot numbers match positions.
            batches <- pin_init::pin_init_array_from_fn(|index| pin_init!(Batch {
                head: Opaque::uninit(),
                index,
            })),
        })
    }

    /// The accounting, for statistics and the budget.
    #[inline]
    pub(crate) fn accounting(&self) -> &reclaim::Reclaim<RECLAIM_SLOTS> {
        &self.core
    }

    /// Queue a removed page (`RemovedSp::free_after_grace_period`).
    pub(super) fn queue(&self, sp: NonNull<bindings::kvm_mmu_page>) {
        let pending = RCU_PENDING.fetch_add(1, Ordering::Relaxed) + 1;
        RCU_PEAK.fetch_max(pending, Ordering::Relaxed);
        self.core.queue(&SpLinks, sp.as_ptr() as usize);
        self.submit();
    }

    /// Post a callback for what is queued, if a slot is free.
    fn submit(&self) {
        if let Some(slot) = self.core.submit() {
            // The callback frees exactly the slot's chain; `self` outlives
            // it (its drop waits for it, and it does not move: type
            // invariants), and so does the module, which waits for its
            // callbacks before unloading (`ProviderRegistration::drop`).
            // SAFETY: the slot, and so its head, is ours until its callback
            // reports it done; see above for the callback's lifetime.
            unsafe { rcu::call_rcu(self.batches[slot].head.get(), reclaim_callback) };
        }
    }

    /// Free a chain of removed pages whose grace period has passed.
    fn free(chain: usize) -> u64 {
        let count = reclaim::free_chain(&SpLinks, chain, |node| {
            // SAFETY: a removed page, unreachable since a grace period.
            unsafe { bindings::kvm_tdp_mmu_provider_free_sp(node as *mut _) }
        });
        RCU_PENDING.fetch_sub(count, Ordering::Relaxed);
        TABLES.fetch_sub(count, Ordering::Relaxed);
        count
    }

    /// At a yield point, with `mmu_lock` dropped: wait for a grace period
    /// and free what is queued, then for the callbacks in flight if that was
    /// not enough.
    pub(super) fn wait_for_grace_period(&self) {
        let chain = self.core.steal();
        rcu::synchronize_rcu();
        self.core.freed(Self::free(chain));
        if self.core.over_budget() && self.core.in_flight() {
            rcu::rcu_barrier();
        }
    }

    /// Free everything: at VM teardown, after the last removal, in at most
    /// `DRAIN_ROUNDS` rounds. Tables still pending after them mean a wrong
    /// count: reported, and left, rather than waited for for ever.
    pub(crate) fn drain(&self) {
        for _ in 0..reclaim::DRAIN_ROUNDS {
            if self.core.pending() == 0 {
                return;
            }
            self.submit();
            rcu::rcu_barrier();
        }
        let pending = self.core.pending();
        if kernel::warn_on!(pending != 0) {
            pr_err!("{pending} removed page tables still pending after the VM's teardown\n");
        }
    }
}

/// The RCU callback of a reclaim slot.
///
/// # Safety
///
/// Called by RCU for a head that `Reclaimer::submit` posted.
unsafe extern "C" fn reclaim_callback(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(Batch, head);
    // SAFETY: `head` is the `head` of a `Batch` (posted by
    // `Reclaimer::submit`); container_of().
    let batch = unsafe { &*head.cast::<u8>().sub(offset).cast::<Batch>() };
    let offset = core::mem::offset_of!(Reclaimer, batches);
    // SAFETY: `batch` is element `batch.index` of the `batches` of a live
    // `Reclaimer` (its invariants); container_of().
    let reclaimer = unsafe {
        &*core::ptr::from_ref(batch)
            .sub(batch.index)
            .cast::<u8>()
            .sub(offset)
            .cast::<Reclaimer>()
    };
    let count = Reclaimer::free(reclaimer.core.take(batch.index));
    reclaimer.core.done(batch.index, count);
    reclaimer.submit();
}

#[pinned_drop]
impl PinnedDrop for Reclaimer {
    /// Wait for what is pending and for every callback of the slots to
    /// have returned: they use the heads and, after reporting their slot
    /// done, `submit` on `self`, so a pending count of zero is not enough.
    /// `tdp_mmu.c` ends its teardown with `rcu_barrier()` too.
    fn drop(self: Pin<&mut Self>) {
        self.drain();
        rcu::rcu_barrier();
    }
}
