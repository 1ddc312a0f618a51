// SPDX-License-Identifier: GPL-2.0

//! What a VM's MMU counts (`Documentation/rust-mmu.md`), in shards so that
//! vCPUs counting at once do not bounce one cache line.

use core::sync::atomic::{AtomicU64, Ordering};

/// What a VM's MMU counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Faults that installed a leaf or MMIO SPTE.
    FaultsFixed,
    /// Faults that found their SPTE fixed by somebody else.
    FaultsSpurious,
    /// Faults retried because an SPTE on their way was frozen.
    RetriesFrozen,
    /// Faults retried because an SPTE changed under their cmpxchg.
    RetriesRaced,
    /// Faults retried because their gfn is inside an invalidation.
    RetriesRange,
    /// Faults retried because an invalidation ended since their lookup.
    RetriesSeq,
    /// Faults not retried that upstream's widened range would have retried.
    RetriesAvoided,
    /// Locked retry checks kvm.ko asked of kvm_rtdp: only faults that ran
    /// while an invalidation was in progress or after the sequence moved
    /// (kvm.ko answers the others inline).
    RetryChecks,
    /// MMIO SPTEs installed.
    MmioSptes,
    /// Page tables linked into the tree.
    TablesLinked,
    /// Page tables removed from the tree (freed after a grace period).
    TablesRemoved,
    /// Leaf SPTEs zapped.
    LeafsZapped,
    /// Remote TLB flushes issued by kvm_rtdp, or asked of kvm.ko by the
    /// return value of an entry.
    TlbFlushes,
    /// Leaf SPTEs made read-only for dirty logging or write-tracking.
    SptesWriteProtected,
    /// Leaf SPTEs whose Dirty (or Writable) bit dirty logging cleared.
    DirtyBitsCleared,
    /// Huge pages split into a table of smaller pages, outside faults.
    HugePagesSplit,
    /// Tables replaced by a huge page again after dirty logging.
    HugePagesRecovered,
    /// Leaf SPTEs aged (Accessed bit cleared or access-tracked).
    SptesAged,
    /// Tables zapped by NX huge page recovery.
    NxHugePagesZapped,
}

/// Every counter, in the order the `stats` file shows them; the match in
/// [`Counter::name`] and this list are checked against each other by the
/// tests below.
pub const COUNTERS: [Counter; 19] = [
    Counter::FaultsFixed,
    Counter::FaultsSpurious,
    Counter::RetriesFrozen,
    Counter::RetriesRaced,
    Counter::RetriesRange,
    Counter::RetriesSeq,
    Counter::RetriesAvoided,
    Counter::RetryChecks,
    Counter::MmioSptes,
    Counter::TablesLinked,
    Counter::TablesRemoved,
    Counter::LeafsZapped,
    Counter::TlbFlushes,
    Counter::SptesWriteProtected,
    Counter::DirtyBitsCleared,
    Counter::HugePagesSplit,
    Counter::HugePagesRecovered,
    Counter::SptesAged,
    Counter::NxHugePagesZapped,
];

impl Counter {
    /// The counter's name in the `stats` file.
    pub fn name(self) -> &'static str {
        match self {
            Counter::FaultsFixed => "faults_fixed",
            Counter::FaultsSpurious => "faults_spurious",
            Counter::RetriesFrozen => "retries_frozen",
            Counter::RetriesRaced => "retries_raced",
            Counter::RetriesRange => "retries_range",
            Counter::RetriesSeq => "retries_seq",
            Counter::RetriesAvoided => "retries_avoided",
            Counter::RetryChecks => "retry_checks",
            Counter::MmioSptes => "mmio_sptes",
            Counter::TablesLinked => "tables_linked",
            Counter::TablesRemoved => "tables_removed",
            Counter::LeafsZapped => "leafs_zapped",
            Counter::TlbFlushes => "tlb_flushes",
            Counter::SptesWriteProtected => "sptes_write_protected",
            Counter::DirtyBitsCleared => "dirty_bits_cleared",
            Counter::HugePagesSplit => "huge_pages_split",
            Counter::HugePagesRecovered => "huge_pages_recovered",
            Counter::SptesAged => "sptes_aged",
            Counter::NxHugePagesZapped => "nx_huge_pages_zapped",
        }
    }
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
    fn every_counter_listed_once_in_declaration_order() {
        for (i, counter) in COUNTERS.iter().enumerate() {
            assert_eq!(*counter as usize, i, "{}", counter.name());
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
