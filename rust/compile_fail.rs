// SPDX-License-Identifier: GPL-2.0

//! Misuses of the `crate::kvm` types that must not compile, one per case,
//! each with its twin: the same code with the misuse taken out, which must
//! compile.
//!
//! Built only by `scripts/compile-fail.sh` (`make check` runs it). A case
//! `NAME` is the item under `#[cfg(any(rtdp_case_NAME, rtdp_twin_NAME))]`;
//! built with `--cfg rtdp_case_NAME` it must fail, every error of the build
//! of the code that its `//~ ERROR CODE fragment` comment names and at that
//! comment's line, and one with the fragment in its message or labels (a
//! type can fail a bound for more than one reason: `mmu_read_sent`). Built with `--cfg
//! rtdp_twin_NAME` (all twins in one build), the lines marked
//! `#[cfg(not(rtdp_twin_NAME))]` are left out (and those marked
//! `#[cfg(rtdp_twin_NAME)]` put in), and it must compile: a case fails for
//! its misuse, not for a typo around it. Every case is written as the code
//! would be if the rule were a comment: it reads naturally, and only the
//! types stop it.

#![allow(
    dead_code,
    unused_variables,
    unused_mut,
    unreachable_code,
    unused_imports
)]

use kernel::sync::rcu;

use crate::changes;
use crate::kvm::{last_on_path, Kvm, ListedRoot, MmuRead, MmuWrite, RootTypes, Sp, Walk};
use crate::level::Level;
use crate::roots::Roots;
use crate::spte::{Spte, NONPRESENT};

/// An SPTE pointer kept across a yield, when its table may be freed:
/// `cond_resched` takes the walk by `&mut` while the pointer borrows it.
#[cfg(any(rtdp_case_stale_sptep, rtdp_twin_stale_sptep))]
fn stale_sptep_after_yield(kvm: &Kvm, lock: &mut MmuWrite<'_>, root: Sp<'_>) {
    let mut walk = Walk::new(kvm, root, Level::PG_4K, 0, 512);
    let sptep = walk.sptep();
    let before = sptep.read();
    walk.cond_resched(lock, false); //~ ERROR E0502 cannot borrow `walk` as mutable because it is also borrowed as immutable
    #[cfg(not(rtdp_twin_stale_sptep))]
    let after = sptep.read();
}

/// A write-lock function called under the read lock: `set_exclusive`
/// takes an `MmuWrite`.
#[cfg(any(rtdp_case_write_under_read, rtdp_twin_write_under_read))]
fn write_lock_function_under_read_lock(kvm: &Kvm, lock: &MmuRead<'_>, root: Sp<'_>) {
    let mut walk = Walk::new(kvm, root, Level::PG_4K, 0, 512);
    #[cfg(not(rtdp_twin_write_under_read))]
    changes::set_exclusive(lock, &mut walk, Spte(NONPRESENT)); //~ ERROR E0308 expected `&MmuWrite<'_>`, found `&MmuRead<'_>`
    #[cfg(rtdp_twin_write_under_read)]
    let _ = changes::set_shared(lock, &mut walk, Spte(NONPRESENT));
}

/// A root used after `Roots::next` put its reference: the root borrows
/// the iterator, which `next` takes by `&mut`.
#[cfg(any(rtdp_case_root_after_next, rtdp_twin_root_after_next))]
fn root_used_after_its_reference_is_put(kvm: &Kvm, lock: &MmuWrite<'_>) {
    let mut roots = Roots::new(kvm, RootTypes::ALL, None);
    let first = roots.next(lock);
    let level = first.map(|root| root.level());
    let second = roots.next(lock); //~ ERROR E0499 cannot borrow `roots` as mutable more than once at a time
    #[cfg(not(rtdp_twin_root_after_next))]
    let again = first.map(|root| root.level());
}

/// A root kept after `for_each_root` returns: under the write lock the
/// roots need no reference only while the call lasts (the closure gets an
/// `Sp` of a lifetime local to each call).
#[cfg(any(rtdp_case_root_escapes, rtdp_twin_root_escapes))]
fn root_escapes_for_each_root(lock: &MmuWrite<'_>) {
    let mut kept: Option<ListedRoot<'_>> = None;
    let mut levels = 0;
    lock.for_each_root(|root| {
        levels += u32::from(root.level().get());
        #[cfg(not(rtdp_twin_root_escapes))]
        let _ = kept.replace(root); //~ ERROR E0521 borrowed data escapes outside of closure
    });
    #[cfg(not(rtdp_twin_root_escapes))]
    let _ = kept.map(|root| root.level());
}

/// An SPTE pointer used after the RCU read-side section it was found in
/// ended, when its table may be freed: it borrows the guard.
#[cfg(any(rtdp_case_sptep_after_rcu, rtdp_twin_sptep_after_rcu))]
fn sptep_used_after_its_rcu_section(kvm: &Kvm, root: Sp<'_>) {
    let guard = rcu::read_lock();
    if let Some((sptep, spte)) = last_on_path(kvm, &guard, root, Level::PG_4K, 0) {
        let seen = sptep.read();
        drop(guard); //~ ERROR E0505 cannot move out of `guard` because it is borrowed
        #[cfg(not(rtdp_twin_sptep_after_rcu))]
        let again = sptep.read();
    }
}

/// A function that runs its argument on another CPU, as a work item does.
fn run_on_another_cpu<T: Send>(work: T) {}

/// `mmu_lock` held for read handed to another task, which does not hold
/// it: the token is not `Send`.
#[cfg(any(rtdp_case_mmu_read_sent, rtdp_twin_mmu_read_sent))]
fn read_token_sent_to_another_thread(lock: MmuRead<'_>) {
    let seq = lock.kvm_seq();
    #[cfg(not(rtdp_twin_mmu_read_sent))]
    run_on_another_cpu(lock); //~ ERROR E0277 cannot be sent between threads safely
    #[cfg(rtdp_twin_mmu_read_sent)]
    run_on_another_cpu(seq);
}

#[cfg(any(rtdp_case_mmu_read_sent, rtdp_twin_mmu_read_sent))]
impl MmuRead<'_> {
    /// Something to do with the token besides sending it.
    fn kvm_seq(&self) -> u64 {
        use crate::kvm::MmuHeld;
        self.kvm().invalidate_seq()
    }
}
