// SPDX-License-Identifier: GPL-2.0

//! kvm_rtdp's debugfs files: `kvm_rtdp/{rcu,tables,bind_new_vms}` for the
//! module, `kvm_rtdp/<pid>-<n>/{stats,rcu}` per VM.

use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use kernel::debugfs::{Dir, File};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use kernel::uaccess::UserSliceReader;

use super::rcu_free::{RCU_PEAK, RCU_PENDING};
use super::sp::TABLES;
use super::Reclaimer;
use crate::stats::{Counter, Stats, COUNTERS};

/// `kvm_rtdp/tables`: `TABLES` (`super::sp`).
struct TablesFile;

impl fmt::Debug for TablesFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tables {}", TABLES.load(Ordering::Relaxed))
    }
}

/// The contents of `kvm_rtdp/rcu`.
struct RcuFile;

impl fmt::Debug for RcuFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pending {}", RCU_PENDING.load(Ordering::Relaxed))?;
        write!(f, "peak {}", RCU_PEAK.load(Ordering::Relaxed))
    }
}

/// A VM's debugfs directory and its files (dropped in this order).
pub(crate) struct VmDebugfs {
    _stats: Pin<KBox<File<StatsFile>>>,
    _rcu: Pin<KBox<File<Arc<Reclaimer>>>>,
    _dir: Dir,
}

/// The contents of a VM's `stats` file: one `name value` line per counter,
/// then `tables_in_use`.
struct StatsFile(Arc<Stats>);

impl fmt::Debug for StatsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for counter in COUNTERS {
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

/// `kvm_rtdp/bind_new_vms`: reads `Y` or `N`; writing `Y`/`1` or `N`/`0`
/// decides whether the VMs created from then on are bound to kvm_rtdp
/// (the module parameter of the same name only sets its first value).
fn show_flag(flag: &&'static AtomicBool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "{}",
        if flag.load(Ordering::Relaxed) {
            'Y'
        } else {
            'N'
        }
    )
}

fn set_flag(flag: &&'static AtomicBool, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 4];
    let n = reader.len();
    if n == 0 || n > buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    let value = match core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?.trim() {
        "1" | "Y" | "y" => true,
        "0" | "N" | "n" => false,
        _ => return Err(EINVAL),
    };
    flag.store(value, Ordering::Relaxed);
    Ok(())
}

impl VmDebugfs {
    /// `kvm_rtdp/<name>/` with the VM's `stats` and `rcu` files; `None`
    /// when the module has no debugfs directory.
    pub(crate) fn new(
        name: &CStr,
        stats: Arc<Stats>,
        reclaim: Arc<Reclaimer>,
    ) -> Result<Option<Self>> {
        let Some(root) = DebugfsRoot::get() else {
            return Ok(None);
        };
        let dir = root.subdir(name);
        let stats = KBox::pin_init(dir.read_only_file(c"stats", StatsFile(stats)), GFP_KERNEL)?;
        let rcu = KBox::pin_init(
            dir.read_write_callback_file(c"rcu", reclaim, &show_rcu, &set_rcu_budget),
            GFP_KERNEL,
        )?;
        Ok(Some(VmDebugfs {
            _stats: stats,
            _rcu: rcu,
            _dir: dir,
        }))
    }
}
/// The module's debugfs directory, `kvm_rtdp/`, published for the per-VM
/// state to hang its files on.
static DEBUGFS_ROOT: AtomicPtr<Dir> = AtomicPtr::new(ptr::null_mut());

/// `kvm_rtdp/` in debugfs, reachable from the entry points while it lives.
///
/// # Invariants
///
/// While it lives, `DEBUGFS_ROOT` points to a `Dir` it owns. It is dropped
/// only at module exit, after the provider is unregistered, when no VM is
/// bound (a bound VM pins the module), so no entry point runs then.
pub(crate) struct DebugfsRoot {
    /// `kvm_rtdp/rcu`: page tables waiting for a grace period, and the peak.
    _rcu: Pin<KBox<File<RcuFile>>>,
    /// `kvm_rtdp/tables`: page-table pages held over all VMs.
    _tables: Pin<KBox<File<TablesFile>>>,
    /// `kvm_rtdp/bind_new_vms`: whether VMs created from now on bind.
    _bind_new_vms: Pin<KBox<File<&'static AtomicBool>>>,
}

impl DebugfsRoot {
    /// Create `kvm_rtdp/` and its module-wide files, and publish it;
    /// `bind_new_vms` is the flag `kvm_rtdp/bind_new_vms` reads and sets.
    pub(crate) fn new(bind_new_vms: &'static AtomicBool) -> Result<Self> {
        let dir = KBox::new(Dir::new(c"kvm_rtdp"), GFP_KERNEL)?;
        let rcu = KBox::pin_init(dir.read_only_file(c"rcu", RcuFile), GFP_KERNEL)?;
        let tables = KBox::pin_init(dir.read_only_file(c"tables", TablesFile), GFP_KERNEL)?;
        let bind = KBox::pin_init(
            dir.read_write_callback_file(c"bind_new_vms", bind_new_vms, &show_flag, &set_flag),
            GFP_KERNEL,
        )?;
        // INVARIANT: the box is published and owned until `drop`.
        DEBUGFS_ROOT.store(KBox::into_raw(dir), Ordering::Release);
        Ok(DebugfsRoot {
            _rcu: rcu,
            _tables: tables,
            _bind_new_vms: bind,
        })
    }

    /// A handle to `kvm_rtdp/`, from an entry point of a bound VM.
    pub(crate) fn get() -> Option<Dir> {
        let dir = DEBUGFS_ROOT.load(Ordering::Acquire);
        // SAFETY: non-null only while a `DebugfsRoot` lives, which outlives
        // every entry point call (type invariant).
        (!dir.is_null()).then(|| unsafe { (*dir).clone() })
    }
}

impl Drop for DebugfsRoot {
    fn drop(&mut self) {
        let dir = DEBUGFS_ROOT.swap(ptr::null_mut(), Ordering::AcqRel);
        if !dir.is_null() {
            // SAFETY: published by `new` from `KBox::into_raw`, taken once.
            drop(unsafe { KBox::from_raw(dir) });
        }
    }
}
