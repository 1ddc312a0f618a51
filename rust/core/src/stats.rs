// SPDX-License-Identifier: GPL-2.0

//! What a VM's MMU counts (`Documentation/rust-mmu.md`), in shards so that
//! vCPUs counting at once do not bounce one cache line.

use core::sync::atomic::{AtomicU64, Ordering};

/// Declares [`Counter`], [`COUNTERS`] and [`Counter::name`] from one list,
/// so that they cannot disagree.
macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// What a VM's MMU counts.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $($(#[$doc])* $variant,)*
        }

        /// Every counter, in the order the `stats` file shows them.
        pub const COUNTERS: [Counter; 0 $(+ { let _ = Counter::$variant; 1 })*] =
            [$(Counter::$variant),*];

        impl Counter {
            /// The counter's name in the `stats` file.
            pub fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    /// Faults that installed a leaf or MMIO SPTE.
    FaultsFixed => "faults_fixed",
    /// Faults that found their SPTE fixed by somebody else.
    FaultsSpurious => "faults_spurious",
    /// Faults retried because an SPTE on their way was frozen.
    RetriesFrozen => "retries_frozen",
    /// Faults retried because an SPTE changed under their cmpxchg.
    RetriesRaced => "retries_raced",
    /// Faults retried because their gfn is inside an invalidation.
    RetriesRange => "retries_range",
    /// Faults retried because an invalidation ended since their lookup.
    RetriesSeq => "retries_seq",
    /// Faults not retried that upstream's widened range would have retried.
    RetriesAvoided => "retries_avoided",
    /// Locked retry checks kvm.ko asked of kvm_rtdp: only faults that ran
    /// while an invalidation was in progress or after the sequence moved
    /// (kvm.ko answers the others inline).
    RetryChecks => "retry_checks",
    /// MMIO SPTEs installed.
    MmioSptes => "mmio_sptes",
    /// Page tables linked into the tree.
    TablesLinked => "tables_linked",
    /// Page tables removed from the tree (freed after a grace period).
    TablesRemoved => "tables_removed",
    /// Leaf SPTEs zapped.
    LeafsZapped => "leafs_zapped",
    /// Remote TLB flushes issued by kvm_rtdp, or asked of kvm.ko by the
    /// return value of an entry.
    TlbFlushes => "tlb_flushes",
    /// Leaf SPTEs made read-only for dirty logging or write-tracking.
    SptesWriteProtected => "sptes_write_protected",
    /// Leaf SPTEs whose Dirty (or Writable) bit dirty logging cleared.
    DirtyBitsCleared => "dirty_bits_cleared",
    /// Huge pages split into a table of smaller pages, outside faults.
    HugePagesSplit => "huge_pages_split",
    /// Tables replaced by a huge page again after dirty logging.
    HugePagesRecovered => "huge_pages_recovered",
    /// Leaf SPTEs aged (Accessed bit cleared or access-tracked).
    SptesAged => "sptes_aged",
    /// Tables zapped by NX huge page recovery.
    NxHugePagesZapped => "nx_huge_pages_zapped",
    /// Changes of mirrored leaves the external page table took.
    ExternalChanges => "external_changes",
    /// Changes of mirrored leaves the external page table refused as busy
    /// (undone; a fault retries).
    ExternalBusy => "external_busy",
    /// Changes of mirrored leaves the external page table refused as
    /// failed (undone; a fault retries, anything else bugs the VM).
    ExternalFailed => "external_failed",
}

/// Shards of the counters.
pub const SHARDS: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Shard([AtomicU64; COUNTERS.len()]);

/// Event counts of a VM's MMU.
#[derive(Default)]
pub struct Stats {
    shards: [Shard; SHARDS],
}

impl Stats {
    /// Count `n` events in shard `shard` (modulo [`SHARDS`]): a CPU's or a
    /// vCPU's number.
    #[inline]
    pub fn add_in(&self, shard: usize, counter: Counter, n: u64) {
        self.shards[shard % SHARDS].0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far (the sum of the shards; not a snapshot).
    pub fn get(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// The counters of one vCPU's faults, in the shard of its index.
    #[inline]
    pub fn of_vcpu(&self, index: usize) -> VcpuStats<'_> {
        VcpuStats {
            stats: self,
            shard: index,
        }
    }
}

/// [`Stats`] as one vCPU counts in them ([`Stats::of_vcpu`]).
pub struct VcpuStats<'a> {
    stats: &'a Stats,
    shard: usize,
}

impl VcpuStats<'_> {
    /// Count one event.
    #[inline]
    pub fn count(&self, counter: Counter) {
        self.stats.add_in(self.shard, counter, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_in_declaration_order_with_distinct_names() {
        for (i, counter) in COUNTERS.iter().enumerate() {
            assert_eq!(*counter as usize, i, "{}", counter.name());
            for other in &COUNTERS[..i] {
                assert_ne!(other.name(), counter.name());
            }
        }
    }

    #[test]
    fn shards_sum() {
        let stats = Stats::default();
        stats.add_in(0, Counter::LeafsZapped, 3);
        stats.add_in(SHARDS + 1, Counter::LeafsZapped, 4);
        stats.of_vcpu(5).count(Counter::LeafsZapped);
        assert_eq!(stats.get(Counter::LeafsZapped), 8);
        assert_eq!(stats.get(Counter::TlbFlushes), 0);
    }
}
