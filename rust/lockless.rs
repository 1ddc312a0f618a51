// SPDX-License-Identifier: GPL-2.0

//! Read-only walks of a vCPU's root without `mmu_lock`: the SPTEs on the
//! way to one address, for MMIO fault checks and for the fast page fault.
//!
//! The caller is in an RCU read-side section
//! (`kvm_tdp_mmu_walk_lockless_begin()`, a [`CallerRcu`]), which keeps
//! every table reached alive until it ends; the walks run inside it rather
//! than take one more. SPTEs may change meanwhile, so the values are
//! snapshots.

use crate::kvm::{last_on_path, CallerRcu, RcuWalk, Sptep, Vcpu};
use crate::level::Level;
use crate::spte::Spte;

/// Record in `sptes[level]` each SPTE on the way to `addr`; returns the
/// lowest level reached, or -1 when the vCPU has no root.
pub(crate) fn get_walk(vcpu: &Vcpu, rcu: &CallerRcu, addr: u64, sptes: &mut [u64]) -> i32 {
    let Some(root) = vcpu.root() else {
        return -1;
    };
    // The gfn without the shared bit: the walk of the direct root adds it.
    let gfn = (addr >> 12) & !vcpu.kvm().gfn_direct_bits();
    let mut leaf = -1;
    let mut walk = RcuWalk::new(vcpu.kvm(), rcu, root, Level::PG_4K, gfn, gfn + 1);
    while walk.valid() {
        let level = walk.level().get() as usize;
        leaf = level as i32;
        if let Some(slot) = sptes.get_mut(level) {
            *slot = walk.old_spte().0;
        }
        walk.next();
    }
    leaf
}

/// The last SPTE on the way to `gfn` in the vCPU's direct root, and its
/// value; `None` when no walk was possible, or when the SPTE is a mirrored
/// leaf, which only the fault path changes (with the external page table).
/// The pointer is valid for the caller's section.
pub(crate) fn last_spte<'r>(
    vcpu: &'r Vcpu,
    rcu: &'r CallerRcu,
    gfn: u64,
) -> Option<(Sptep<'r>, Spte)> {
    last_on_path(vcpu.kvm(), rcu, vcpu.root()?, Level::PG_4K, gfn)
        .filter(|(_, spte)| !spte.is_mirrored())
}
