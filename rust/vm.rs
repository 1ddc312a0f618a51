// SPDX-License-Identifier: GPL-2.0

//! Making and dropping a VM's [`VmState`], for the `init` and `uninit`
//! entries (which store and take it, `crate::entries`).

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

use crate::invalidations::Invalidations;
use crate::kvm::{ExternalTable, NewVm, Reclaimer, VmDebugfs, VmState};
use crate::stats::{Counter, Stats};

/// VMs given state so far, to name their debugfs directories.
static VMS: AtomicU64 = AtomicU64::new(0);

/// A new VM's state, with its debugfs directory `kvm_rtdp/<pid>-<n>/` (n
/// counts VMs since the module was loaded).
pub(crate) fn new_state(kvm: &NewVm<'_>) -> Result<KBox<VmState>> {
    let stats = Arc::new(Stats::default(), GFP_KERNEL)?;
    let reclaim = Arc::pin_init(Reclaimer::new(crate::rcu_budget()), GFP_KERNEL)?;
    let n = VMS.fetch_add(1, Ordering::Relaxed);
    let name = CString::try_from_fmt(fmt!("{}-{}", kernel::current!().pid(), n))?;
    let debugfs = VmDebugfs::new(&name, stats.clone(), reclaim.clone())?;
    let external = ExternalTable::of(kvm);
    // A TDX VM cannot run without its external page table: kvm.ko always
    // has one for it.
    if kvm.has_mirrored_tdp() && external.is_none() {
        pr_err!("kvm_rtdp: kvm.ko gave a TDX VM no external page table\n");
        return Err(EINVAL);
    }
    let state = KBox::new(
        VmState {
            stats,
            invalidations: Invalidations::new(),
            reclaim,
            masks: kvm.masks(),
            external,
            _debugfs: debugfs,
        },
        GFP_KERNEL,
    )?;
    Ok(state)
}

/// After `uninit` has torn the MMU down and taken the state back.
pub(crate) fn drop_state(state: KBox<VmState>) {
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
