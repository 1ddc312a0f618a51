// SPDX-License-Identifier: GPL-2.0

//! Misuses of the `crate::kvm` types that must not compile, one per case.
//!
//! Built only by `scripts/compile-fail.sh` (`make check` runs it), with
//! `--cfg rtdp_compile_fail --cfg rtdp_case_<case>`: each case must fail
//! with the error code the script expects, and the build without a case
//! (the normal one) must succeed, so a case fails for its own reason.
//! Every case is written as the code would be if the rule were a comment:
//! it reads naturally, and only the types stop it.

#![allow(dead_code, unused_variables, unused_mut, unreachable_code)]

use crate::changes;
use crate::kvm::{Kvm, MmuRead, MmuWrite, NewSp, RootRef, Sp, Walk};
use crate::level::Level;
use crate::spte::{Spte, NONPRESENT};

/// An SPTE pointer kept across a yield, when its table may be freed:
/// `cond_resched` takes the walk by `&mut` while the pointer borrows it
/// (E0502).
#[cfg(rtdp_case_stale_sptep)]
fn stale_sptep_after_yield(kvm: &Kvm, lock: &mut MmuWrite<'_>, root: Sp<'_>) {
    let mut walk = Walk::new(kvm, root, Level::PG_4K, 0, 512);
    let sptep = walk.sptep();
    walk.cond_resched(lock, false);
    let _ = sptep.read();
}

/// A write-lock function called under the read lock: `set_exclusive`
/// takes an `MmuWrite` (E0308).
#[cfg(rtdp_case_write_under_read)]
fn write_lock_function_under_read_lock(kvm: &Kvm, lock: &MmuRead<'_>, root: Sp<'_>) {
    let mut walk = Walk::new(kvm, root, Level::PG_4K, 0, 512);
    changes::set_exclusive(lock, &mut walk, Spte(NONPRESENT));
}

/// A root reference put twice: dropping a `RootRef` puts it, and a moved
/// value cannot be dropped again (E0382).
#[cfg(rtdp_case_double_put)]
fn double_put_of_a_root(kvm: &Kvm, root: Sp<'_>) {
    if let Some(held) = RootRef::try_get(kvm, root) {
        drop(held);
        drop(held);
    }
}

/// A removed table freed twice: `free_after_grace_period` consumes the
/// `RemovedSp` (E0382). The table comes from the exchange that unlinks it.
#[cfg(rtdp_case_double_free)]
fn double_free_of_an_unlinked_table(kvm: &Kvm, lock: &MmuWrite<'_>, root: Sp<'_>) {
    let walk = Walk::new(kvm, root, Level::PG_4K, 0, 512);
    let replaced = walk.sptep().write(lock, walk.old_spte(), Spte(NONPRESENT));
    if let Some(table) = replaced.removed {
        table.free_after_grace_period(kvm);
        table.free_after_grace_period(kvm);
    }
}

/// A root used after `Roots::next` put its reference: the root borrows
/// the iterator, which `next` takes by `&mut` (E0499).
#[cfg(rtdp_case_root_after_next)]
fn root_used_after_its_reference_is_put(kvm: &Kvm, lock: &MmuWrite<'_>) {
    let mut roots = crate::roots::Roots::new(kvm, crate::kvm::RootTypes::ALL, None);
    let first = roots.next(lock);
    let second = roots.next(lock);
    let _ = first.map(|root| root.level());
}

/// A page never linked, freed twice: dropping a `NewSp` frees it, and a
/// moved value cannot be dropped again (E0382).
#[cfg(rtdp_case_new_sp_twice)]
fn new_page_freed_twice(sp: NewSp) {
    drop(sp);
    drop(sp);
}
