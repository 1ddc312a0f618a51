// SPDX-License-Identifier: GPL-2.0

//! What kvm_rtdp keeps per VM, from the `init` entry to `uninit`.
//!
//! # Invariants
//!
//! A VM bound to kvm_rtdp has exactly one [`VmState`] from the moment its
//! `init` entry returns 0 until its `uninit` entry has torn the MMU down;
//! kvm.ko calls no other entry outside that span.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::cpu::CpuId;
use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

use crate::invalidations::Invalidations;
use crate::kvm::{DebugfsRoot, Kvm, Reclaimer, Vcpu};
use crate::spte::Masks;

/// Per-VM state.
pub(crate) struct VmState {
    /// Event counts of the VM's MMU.
    pub(crate) stats: Arc<Stats>,
    /// MMU notifier invalidations in progress (`crate::retry`).
    pub(crate) invalidations: Invalidations,
    /// Removed page tables waiting for a grace period (`crate::reclaim`).
    pub(crate) reclaim: Arc<Reclaimer>,
    /// The mode-dependent SPTE bits, constant while the vendor module that
    /// set them (and so the VM) lives.
    pub(crate) masks: Masks,
    /// `kvm_rtdp/<pid>-<n>/stats` in debugfs, removed with the state.
    _debugfs: Option<VmDebugfs>,
}

/// A VM's debugfs directory and its files (dropped in this order).
struct VmDebugfs {
    _stats: Pin<KBox<File<StatsFile>>>,
    _rcu: Pin<KBox<File<Arc<Reclaimer>>>>,
    _dir: Dir,
}

/// The contents of a VM's `stats` file: one `name value` line per counter,
/// then `tables_in_use`.
struct StatsFile(Arc<Stats>);

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for counter in Counter::ALL {
            writeln!(f, "{} {}", counter.name(), self.0.get(counter))?;
        }
        let linked = self.0.get(Counter::TablesLinked);
        let removed = self.0.get(Counter::TablesRemoved);
        writeln!(f, "tables_in_use {}", linked.saturating_sub(removed))
    }
}

/// `rcu`: the VM's removed tables waiting for a grace period. Reads give
/// `pending`, `peak`, `budget`, `batches` (RCU callbacks posted) and `waits`
/// (grace periods waited for at the budget); writing a number sets the
/// budget.
fn show_rcu(reclaim: &Arc<Reclaimer>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let s = reclaim.accounting().stats();
    writeln!(f, "pending {}", s.pending)?;
    writeln!(f, "peak {}", s.peak)?;
    writeln!(f, "budget {}", s.budget)?;
    writeln!(f, "batches {}", s.batches)?;
    writeln!(f, "waits {}", s.waits)
}

fn set_rcu_budget(reclaim: &Arc<Reclaimer>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 24];
    let n = reader.len();
    if n == 0 || n > buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    let text = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
    let budget = text.trim().parse::<u64>().map_err(|_| EINVAL)?;
    reclaim.accounting().set_budget(budget);
    Ok(())
}

/// VMs given state so far, to name their debugfs directories.
static VMS: AtomicU64 = AtomicU64::new(0);

/// What a VM's MMU counts (`Documentation/rust-mmu.md`).
#[derive(Clone, Copy)]
pub(crate) enum Counter {
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

const COUNTERS: usize = 19;

impl Counter {
    const ALL: [Counter; COUNTERS] = [
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

    fn name(self) -> &'static str {
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

/// Shards of the counters: a vCPU counts in the shard of the CPU it runs
/// on, so that vCPUs faulting at once do not bounce one cache line.
const SHARDS: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Shard([AtomicU64; COUNTERS]);

/// Event counts of a VM's MMU, shown in debugfs.
#[derive(Default)]
pub(crate) struct Stats {
    shards: [Shard; SHARDS],
}

impl Stats {
    /// Count one event.
    pub(crate) fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Count `n` events at once: one atomic add for a batch.
    pub(crate) fn add(&self, counter: Counter, n: u64) {
        self.add_in(CpuId::current().as_u32() as usize, counter, n);
    }

    /// The counters of a vCPU's faults: in the shard of its index, which
    /// needs no call into C (`smp_processor_id()` is a helper for Rust, 6
    /// guest instructions per fault) and keeps vCPUs faulting at once on
    /// their own cache lines just as well.
    pub(crate) fn of_vcpu(&self, vcpu: &Vcpu) -> VcpuStats<'_> {
        VcpuStats {
            stats: self,
            shard: vcpu.index(),
        }
    }

    fn add_in(&self, shard: usize, counter: Counter, n: u64) {
        self.shards[shard % SHARDS].0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far (the sum of the shards; not a snapshot).
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }
}

/// [`Stats`] as one vCPU counts in them ([`Stats::of_vcpu`]).
pub(crate) struct VcpuStats<'a> {
    stats: &'a Stats,
    shard: usize,
}

impl VcpuStats<'_> {
    /// Count one event.
    #[inline]
    pub(crate) fn count(&self, counter: Counter) {
        self.stats.add_in(self.shard, counter, 1);
    }
}

/// The `init` entry: give the VM its state, and its debugfs directory
/// `kvm_rtdp/<pid>-<n>/` (n counts VMs since the module was loaded).
pub(crate) fn init(kvm: &Kvm) -> Result {
    let stats = Arc::new(Stats::default(), GFP_KERNEL)?;
    let reclaim = Arc::new(Reclaimer::new(crate::rcu_budget()), GFP_KERNEL)?;
    let debugfs = match DebugfsRoot::get() {
        Some(root) => {
            let n = VMS.fetch_add(1, Ordering::Relaxed);
            let name = CString::try_from_fmt(fmt!("{}-{}", kernel::current!().pid(), n))?;
            let dir = root.subdir(&name);
            let file = KBox::pin_init(
                dir.read_only_file(c"stats", StatsFile(stats.clone())),
                GFP_KERNEL,
            )?;
            let rcu = KBox::pin_init(
                dir.read_write_callback_file(c"rcu", reclaim.clone(), &show_rcu, &set_rcu_budget),
                GFP_KERNEL,
            )?;
            Some(VmDebugfs {
                _stats: file,
                _rcu: rcu,
                _dir: dir,
            })
        }
        None => None,
    };
    let state = KBox::new(
        VmState {
            stats,
            invalidations: Invalidations::new(),
            reclaim,
            masks: kvm.masks(),
            _debugfs: debugfs,
        },
        GFP_KERNEL,
    )?;
    kvm.set_state(state);
    Ok(())
}

/// After `uninit` has torn the MMU down: drop the VM's state.
pub(crate) fn uninit(kvm: &Kvm) {
    let state = kvm.take_state();
    let s = &state.stats;
    pr_debug!(
        "VM done: {} faults fixed, {} retried in invalidated ranges, {} on sequence changes, {} retries avoided, {} tables linked, {} removed\n",
        s.get(Counter::FaultsFixed),
        s.get(Counter::RetriesRange),
        s.get(Counter::RetriesSeq),
        s.get(Counter::RetriesAvoided),
        s.get(Counter::TablesLinked),
        s.get(Counter::TablesRemoved)
    );
}
