// SPDX-License-Identifier: GPL-2.0

//! The fault path: building the translation of a faulting gfn.
//!
//! Runs with `mmu_lock` held for read, concurrently with other faults,
//! zaps under the read lock and the lockless fast page fault. Tables are
//! linked by compare-and-exchange; a fault that loses a race, or meets a
//! frozen SPTE, returns [`PfResult::Retry`] and the vCPU faults again.

use crate::changes;
use crate::huge_pages;
use crate::kvm::{trace, Fault, MmuRead, PfResult, RootRole, Vcpu, Walk};
use crate::level::Level;
use crate::mmio;
use crate::pages;
use crate::spte::{Spte, MIRRORED};
use crate::stats::Counter;

/// Handle `fault` of `vcpu` on its current root; kvm.ko maps with
/// `mmu_lock` held for read (`lock`).
pub(crate) fn map(vcpu: &Vcpu, lock: &MmuRead<'_>, fault: &Fault) -> PfResult {
    let kvm = vcpu.kvm();
    let stats = kvm.state().stats.of_vcpu(vcpu.index());
    let Some(root) = vcpu.root_for_fault(fault) else {
        kernel::warn_on!(true);
        return PfResult::Retry;
    };
    if kernel::warn_on!(root.is_invalid()) {
        return PfResult::Retry;
    }

    fault.hugepage_adjust(vcpu);
    trace::spte_requested(fault, root.access());

    let mut walk = Walk::new(kvm, root, Level::PG_4K, fault.gfn(), fault.gfn() + 1);
    // Present links above the goal level are passed in one go: nothing
    // below acts on them (the huge page adjustment acts at the goal level
    // only).
    walk.descend(fault.goal_level());
    while walk.valid() {
        if fault.nx_huge_page_workaround_enabled() {
            fault.disallowed_hugepage_adjust(walk.old_spte(), walk.level());
        }
        let old = walk.old_spte();
        // Somebody is removing or changing this SPTE: don't build under it.
        if old.is_frozen() {
            stats.count(Counter::RetriesFrozen);
            return PfResult::Retry;
        }
        if walk.level() == fault.goal_level() {
            return map_target_level(vcpu, lock, fault, &mut walk);
        }
        if old.is_present() && !old.is_huge() {
            walk.next();
            walk.descend(fault.goal_level());
            continue;
        }

        // Not present, or a huge page to split: link a new table.
        let parent = walk.table().header();
        // A mirror root maps no huge page (TDX): nothing to split there.
        if old.is_present() && parent.is_mirror() {
            kernel::warn_on!(true);
            kvm.bug();
            return PfResult::Retry;
        }
        let role = RootRole::of(parent).child();
        let mut sp = vcpu.alloc_sp(Some(walk.sptep()), walk.gfn(), role);
        sp.set_nx_huge_page_disallowed(fault.huge_page_disallowed());
        if parent.is_mirror() {
            // Its external twin gets a page too, linked with it.
            vcpu.alloc_external_spt(&mut sp);
        }
        let linked = if old.is_present() {
            huge_pages::split(lock, &mut walk, &mut sp)
        } else {
            changes::set_shared(lock, &mut walk, sp.nonleaf_spte())
        };
        if linked.is_err() {
            // Never published: freed now.
            drop(sp);
            stats.count(Counter::RetriesRaced);
            return PfResult::Retry;
        }
        let sp = sp.publish_in(&walk);
        stats.count(Counter::TablesLinked);
        pages::linked(
            kvm,
            sp,
            fault.huge_page_disallowed(),
            fault.req_level(),
            walk.level(),
        );
        walk.next();
    }

    // The walk ended above the goal level, e.g. at a table being freed.
    PfResult::Retry
}

/// Install the leaf (or MMIO) SPTE of `fault` under `walk`, at the goal
/// level.
fn map_target_level(
    vcpu: &Vcpu,
    lock: &MmuRead<'_>,
    fault: &Fault,
    walk: &mut Walk<'_>,
) -> PfResult {
    let kvm = vcpu.kvm();
    let stats = kvm.state().stats.of_vcpu(vcpu.index());
    let sp = walk.table().header();
    let level = walk.level();
    let old = walk.old_spte();

    if kernel::warn_on!(sp.level() != fault.goal_level()) {
        return PfResult::Retry;
    }
    // Another vCPU fixed it first.
    if old.is_present()
        && old.is_leaf(level)
        && (fault.prefetch() || !vcpu.permission_fault(old, fault))
    {
        stats.count(Counter::FaultsSpurious);
        return PfResult::Spurious;
    }

    let (mut new, wrprot) = if fault.is_mmio() {
        (mmio::make(vcpu, sp, walk.gfn()), false)
    } else {
        fault.make_spte(vcpu, sp, walk.gfn(), old)
    };
    // A private page of a VM with a software external page table is
    // mirrored in its one root (a TDX VM's is in its mirror root): the
    // external table takes the new leaf before the CPU can see it.
    if fault.is_private()
        && new.is_present()
        && kvm.state().external.is_some()
        && !kvm.has_mirrored_tdp()
    {
        // guest_memfd maps no huge page in 7.3, and the external table
        // takes none (as TDX's): a huge private fault is KVM's bug.
        if kernel::warn_on!(level != Level::PG_4K) {
            kvm.bug();
            return PfResult::Retry;
        }
        new = Spte(new.0 | MIRRORED);
    }

    let mut ret = PfResult::Fixed;
    if new == old {
        ret = PfResult::Spurious;
    } else if changes::set_shared(lock, walk, new).is_err() {
        // The SPTE still holds `old` if it was frozen for the change and
        // the external page table refused it; else it changed under us.
        // (A refused link of a mirror table is a raced retry above.)
        stats.count(if walk.old_spte() == old {
            Counter::RetriesFrozen
        } else {
            Counter::RetriesRaced
        });
        return PfResult::Retry;
    } else if old.is_present()
        && (!old.is_leaf(level)
            || kernel::warn_on!(old.leaf_change_needs_tlb_flush(new, &kvm.state().masks)))
    {
        // A table was replaced by a huge page: its translations may be
        // cached. A fault never takes writability away from a leaf (only
        // write-protection does, and flushes); if one did, flush too.
        kvm.flush_remote_tlbs_gfn(walk.gfn(), level);
    }

    // A write to a page that must stay write-protected is emulated.
    if wrprot && fault.write() {
        ret = PfResult::WriteProtected;
    }
    if kvm.is_mmio_spte(new) {
        vcpu.count_mmio_spte_created();
        stats.count(Counter::MmioSptes);
        trace::mark_mmio(walk.sptep(), walk.gfn(), new);
        ret = PfResult::Emulate;
    } else {
        trace::set_spte(walk.sptep(), walk.gfn());
    }
    match ret {
        PfResult::Spurious => stats.count(Counter::FaultsSpurious),
        _ => stats.count(Counter::FaultsFixed),
    }
    ret
}
