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

use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

use crate::invalidations::Invalidations;
use crate::kvm::{DebugfsRoot, Kvm, Reclaimer};

/// Per-VM state.
pub(crate) struct VmState {
    /// Event counts of the VM's MMU.
    pub(crate) stats: Arc<Stats>,
    /// MMU notifier invalidations in progress (`crate::retry`).
    pub(crate) invalidations: Invalidations,
    /// Removed page tables waiting for a grace period (`crate::reclaim`).
    pub(crate) reclaim: Arc<Reclaimer>,
    /// `kvm_rtdp/<pid>-<n>/stats` in debugfs, removed with the state.
    _debugfs: Option<VmDebugfs>,
}

/// A VM's debugfs directory and its files (dropped in this order).
struct VmDebugfs {
    _stats: Pin<KBox<File<StatsFile>>>,
    _rcu: Pin<KBox<File<Arc<Reclaimer>>>>,
    _dir: Dir,
}

/// The contents of a VM's `stats` file: one `name value` line per counter.
struct StatsFile(Arc<Stats>);

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        for (name, counter) in [
            ("faults_fixed", &s.faults_fixed),
            ("faults_spurious", &s.faults_spurious),
            ("retries_frozen", &s.retries_frozen),
            ("retries_raced", &s.retries_raced),
            ("retries_range", &s.retries_range),
            ("retries_seq", &s.retries_seq),
            ("retries_avoided", &s.retries_avoided),
            ("mmio_sptes", &s.mmio_sptes),
            ("tables_linked", &s.tables_linked),
            ("tables_removed", &s.tables_removed),
        ] {
            writeln!(f, "{name} {}", Stats::get(counter))?;
        }
        Ok(())
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

/// Event counts of a VM's MMU, shown in debugfs (`Documentation/rust-mmu.md`).
#[derive(Default)]
pub(crate) struct Stats {
    /// Faults that installed a leaf or MMIO SPTE.
    pub(crate) faults_fixed: AtomicU64,
    /// Faults that found their SPTE fixed by somebody else.
    pub(crate) faults_spurious: AtomicU64,
    /// Faults retried because an SPTE on their way was frozen.
    pub(crate) retries_frozen: AtomicU64,
    /// Faults retried because an SPTE changed under their cmpxchg.
    pub(crate) retries_raced: AtomicU64,
    /// MMIO SPTEs installed.
    pub(crate) mmio_sptes: AtomicU64,
    /// Page tables linked into the tree.
    pub(crate) tables_linked: AtomicU64,
    /// Page tables removed from the tree (freed after a grace period).
    pub(crate) tables_removed: AtomicU64,
    /// Faults retried because their gfn is inside an invalidation.
    pub(crate) retries_range: AtomicU64,
    /// Faults retried because an invalidation ended since their lookup.
    pub(crate) retries_seq: AtomicU64,
    /// Faults not retried that upstream's widened range would have retried.
    pub(crate) retries_avoided: AtomicU64,
}

impl Stats {
    /// Count one event.
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
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
        "VM done: {} faults fixed, {} spurious, retried {} on frozen SPTEs, {} on races, {} in invalidated ranges, {} on sequence changes, {} retries avoided, {} MMIO SPTEs, {} tables linked, {} removed\n",
        Stats::get(&s.faults_fixed),
        Stats::get(&s.faults_spurious),
        Stats::get(&s.retries_frozen),
        Stats::get(&s.retries_raced),
        Stats::get(&s.retries_range),
        Stats::get(&s.retries_seq),
        Stats::get(&s.retries_avoided),
        Stats::get(&s.mmio_sptes),
        Stats::get(&s.tables_linked),
        Stats::get(&s.tables_removed)
    );
}
