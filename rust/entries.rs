// SPDX-License-Identifier: GPL-2.0

//! The entry points kvm.ko calls through `struct kvm_tdp_mmu_ops`: the only
//! place that turns kvm.ko's raw pointers into the types of `crate::kvm`.
//!
//! kvm.ko guarantees that each argument is valid for the call, with the
//! locking of the `kvm_tdp_mmu_*()` function the entry replaces; each entry
//! says what it is given once, with `from_raw` for objects and
//! [`MmuRead::assume`]/[`MmuWrite::assume`] for `mmu_lock`, and calls one
//! safe function of a logic module. Per-VM state is stored by `init` and
//! taken back by `uninit`, here and nowhere else.

use core::ffi::c_int;
use core::ptr::NonNull;

use kernel::{bindings, prelude::*};

use crate::kvm::{
    CallerRcu, Fault, GfnRange, Kvm, Memslot, MmuLocked, MmuRead, MmuWrite, NewVm, NoGuestEntry,
    RootRef, RootTypes, ScheduledZaps, Vcpu,
};
use crate::level::Level;
use crate::spte::Spte;

/// The level kvm.ko passes as a C int, if it is one a leaf can have (4 KiB
/// to 1 GiB); anything else is a kvm.ko bug, reported.
fn leaf_level(level: c_int) -> Option<Level> {
    let level = u8::try_from(level).ok().and_then(Level::new);
    match level {
        Some(level) if level <= Level::PG_1G => Some(level),
        _ => {
            kernel::warn_on!(true);
            None
        }
    }
}

/// The ops table kvm_rtdp registers (`name` and `owner` filled in by the
/// caller).
pub(crate) fn ops(module: &'static ThisModule, name: &'static CStr) -> bindings::kvm_tdp_mmu_ops {
    bindings::kvm_tdp_mmu_ops {
        size: core::mem::size_of::<bindings::kvm_tdp_mmu_ops>(),
        owner: module.as_ptr(),
        name: name.as_char_ptr(),
        bind: Some(bind),
        init: Some(init),
        uninit: Some(uninit),
        alloc_root: Some(alloc_root),
        put_root: Some(put_root),
        invalidate_roots: Some(invalidate_roots),
        zap_invalidated_roots: Some(zap_invalidated_roots),
        zap_all: Some(zap_all),
        zap_leafs: Some(zap_leafs),
        unmap_gfn_range: Some(unmap_gfn_range),
        map: Some(map),
        get_walk: Some(get_walk),
        fast_pf_get_last_sptep: Some(fast_pf_get_last_sptep),
        invalidate_start: Some(invalidate_start),
        invalidate_range_add: Some(invalidate_range_add),
        invalidate_end: Some(invalidate_end),
        invalidate_retry_gfn: Some(invalidate_retry_gfn),
        check_mmio_spte: Some(check_mmio_spte),
        zap_possible_nx_huge_page: Some(zap_possible_nx_huge_page),
        age_gfn_range: Some(age_gfn_range),
        test_age_gfn: Some(test_age_gfn),
        wrprot_slot: Some(wrprot_slot),
        clear_dirty_slot: Some(clear_dirty_slot),
        clear_dirty_pt_masked: Some(clear_dirty_pt_masked),
        write_protect_gfn: Some(write_protect_gfn),
        recover_huge_pages: Some(recover_huge_pages),
        try_split_huge_pages: Some(try_split_huge_pages),
    }
}

/// Every VM type is served, TDX included (its mirror root propagates to
/// the Secure EPT through kvm.ko's external page table ops).
extern "C" fn bind(_kvm: *mut bindings::kvm) -> bool {
    crate::bind_new_vms()
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_mmu_init_tdp_mmu()`.
unsafe extern "C" fn init(kvm: *mut bindings::kvm) -> c_int {
    let Some(kvm) = NonNull::new(kvm) else {
        return EINVAL.to_errno();
    };
    // SAFETY: kvm.ko calls `init` once per VM, with a valid VM, before any
    // other entry.
    let vm = unsafe { NewVm::from_raw(kvm) };
    match crate::vm::new_state(&vm) {
        Ok(state) => {
            let _bound: &Kvm = vm.bind(state);
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_mmu_uninit_tdp_mmu()`.
unsafe extern "C" fn uninit(kvm: *mut bindings::kvm) {
    // SAFETY: a VM bound to kvm_rtdp, after its init entry and before its
    // uninit entry (the module doc).
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: the VM is being destroyed: no other task uses it.
    let zaps = unsafe { ScheduledZaps::assume(kvm) };
    crate::zap::uninit(kvm, zaps);
    // SAFETY: `uninit` runs once per VM, after every other entry has
    // returned; nothing borrows the state any more, and `kvm` is not used
    // after this.
    let state = unsafe { kvm.unbind() };
    crate::vm::drop_state(state);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_alloc_root()`.
unsafe extern "C" fn alloc_root(vcpu: *mut bindings::kvm_vcpu, mirror: bool) {
    // SAFETY: a valid vCPU, running MMU code.
    crate::roots::alloc_root(unsafe { Vcpu::from_raw(vcpu) }, mirror);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_put_root()`.
unsafe extern "C" fn put_root(kvm: *mut bindings::kvm, root: *mut bindings::kvm_mmu_page) {
    // SAFETY: a VM bound to kvm_rtdp, after its init entry and before its
    // uninit entry (the module doc).
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: `root` is a root of `kvm` and the caller gives up the
    // reference it owns.
    drop(unsafe { RootRef::from_raw(kvm, root) });
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_invalidate_roots()`.
unsafe extern "C" fn invalidate_roots(
    kvm: *mut bindings::kvm,
    types: bindings::kvm_tdp_mmu_root_types,
) {
    // SAFETY: a bound VM (the module doc); `kvm_mmu_zap_all_fast()` holds mmu_lock for write.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: as above.
    let lock = unsafe { MmuWrite::assume(kvm) };
    crate::roots::invalidate_roots(&lock, RootTypes(types));
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_zap_invalidated_roots()`.
unsafe extern "C" fn zap_invalidated_roots(kvm: *mut bindings::kvm, shared: bool) {
    // SAFETY: a bound VM (the module doc), called without mmu_lock.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: kvm.ko's callers hold `slots_lock`, so this is the only task
    // taking the VM's scheduled zaps (kvm.ko's uninit, the other caller in
    // C, is replaced by ours).
    let zaps = unsafe { ScheduledZaps::assume(kvm) };
    if shared {
        crate::zap::zap_invalidated_roots(kvm, &mut kvm.read_lock_mmu(), &zaps);
    } else {
        crate::zap::zap_invalidated_roots(kvm, &mut kvm.write_lock_mmu(), &zaps);
    }
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_zap_all()`.
unsafe extern "C" fn zap_all(kvm: *mut bindings::kvm) {
    // SAFETY: a bound VM (the module doc); kvm.ko holds mmu_lock for write.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: as above.
    let mut lock = unsafe { MmuWrite::assume(kvm) };
    // SAFETY: kvm.ko zaps everything only from kvm_arch_flush_shadow_all(),
    // once the VM is being destroyed or its VMM has exited.
    let gone = unsafe { NoGuestEntry::assume(kvm) };
    crate::zap::zap_all(&mut lock, &gone);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_zap_leafs()`.
unsafe extern "C" fn zap_leafs(kvm: *mut bindings::kvm, start: u64, end: u64, flush: bool) -> bool {
    // SAFETY: a bound VM (the module doc); kvm.ko holds mmu_lock for write.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: as above.
    let mut lock = unsafe { MmuWrite::assume(kvm) };
    crate::zap::zap_leafs(kvm, &mut lock, start, end, flush)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_unmap_gfn_range()`.
unsafe extern "C" fn unmap_gfn_range(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
    flush: bool,
) -> bool {
    // SAFETY: a bound VM (the module doc) and range; kvm.ko holds mmu_lock for write.
    let (kvm, range) = unsafe { (Kvm::from_raw(kvm), GfnRange::from_raw(range)) };
    // SAFETY: as above.
    let mut lock = unsafe { MmuWrite::assume(kvm) };
    crate::zap::unmap_gfn_range(kvm, &mut lock, range, flush)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_map()`.
unsafe extern "C" fn map(
    vcpu: *mut bindings::kvm_vcpu,
    fault: *mut bindings::kvm_page_fault,
) -> c_int {
    // SAFETY: the faulting vCPU and its fault, valid for the call.
    let (vcpu, fault) = unsafe { (Vcpu::from_raw(vcpu), Fault::from_raw(fault)) };
    // SAFETY: kvm.ko maps with mmu_lock held for read.
    let lock = unsafe { MmuRead::assume(vcpu.kvm()) };
    crate::fault::map(vcpu, &lock, fault).to_c()
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_get_walk()`.
unsafe extern "C" fn get_walk(
    vcpu: *mut bindings::kvm_vcpu,
    addr: u64,
    sptes: *mut u64,
    root_level: *mut c_int,
) -> c_int {
    // SAFETY: a valid vCPU.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    // SAFETY: kvm.ko calls the entry inside
    // kvm_tdp_mmu_walk_lockless_begin() .. _end(), an RCU read-side
    // section that outlasts this function.
    let rcu = unsafe { CallerRcu::assume() };
    // SAFETY: `root_level` is writable.
    unsafe { *root_level = vcpu.root_level() };
    // SAFETY: `sptes` has room for one SPTE per level
    // (PT64_ROOT_MAX_LEVEL + 1), indexed by level.
    let sptes = unsafe { core::slice::from_raw_parts_mut(sptes, Level::MAX.get() as usize + 1) };
    crate::lockless::get_walk(vcpu, &rcu, addr, sptes)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_fast_pf_get_last_sptep()`.
unsafe extern "C" fn fast_pf_get_last_sptep(
    vcpu: *mut bindings::kvm_vcpu,
    gfn: u64,
    spte: *mut u64,
) -> *mut u64 {
    // SAFETY: a valid vCPU.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    // SAFETY: the caller is in kvm_tdp_mmu_walk_lockless_begin(), an RCU
    // read-side section that keeps the returned SPTE alive for kvm.ko.
    let rcu = unsafe { CallerRcu::assume() };
    match crate::lockless::last_spte(vcpu, &rcu, gfn) {
        Some((sptep, value)) => {
            // SAFETY: `spte` is writable.
            unsafe { *spte = value.0 };
            sptep.as_ptr()
        }
        None => core::ptr::null_mut(),
    }
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking its `invalidate_start` hook documents (`kvm_tdp_mmu_provider.h`).
unsafe extern "C" fn invalidate_start(kvm: *mut bindings::kvm) {
    // SAFETY: kvm.ko passes a bound VM (the module doc) and holds its mmu_lock for write
    // around the hook (kvm_mmu_invalidate_begin()).
    let lock = unsafe { MmuWrite::assume(Kvm::from_raw(kvm)) };
    crate::retry::start(&lock);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking its `invalidate_range_add` hook documents (`kvm_tdp_mmu_provider.h`).
unsafe extern "C" fn invalidate_range_add(kvm: *mut bindings::kvm, start: u64, end: u64) {
    // SAFETY: kvm.ko passes a bound VM (the module doc) and holds its mmu_lock for write
    // around the hook (kvm_mmu_invalidate_range_add()).
    let lock = unsafe { MmuWrite::assume(Kvm::from_raw(kvm)) };
    crate::retry::range_add(&lock, start, end);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking its `invalidate_end` hook documents (`kvm_tdp_mmu_provider.h`).
unsafe extern "C" fn invalidate_end(kvm: *mut bindings::kvm) {
    // SAFETY: kvm.ko passes a bound VM (the module doc) and holds its mmu_lock for write
    // around the hook (kvm_mmu_invalidate_end()).
    let lock = unsafe { MmuWrite::assume(Kvm::from_raw(kvm)) };
    crate::retry::end(&lock);
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking its `invalidate_retry_gfn` hook documents (`kvm_tdp_mmu_provider.h`).
unsafe extern "C" fn invalidate_retry_gfn(
    kvm: *mut bindings::kvm,
    mmu_seq: usize,
    gfn: u64,
    locked: bool,
) -> bool {
    // SAFETY: kvm.ko passes a bound VM (the module doc).
    let kvm = unsafe { Kvm::from_raw(kvm) };
    if !locked {
        return crate::retry::may_retry(kvm, mmu_seq as u64, gfn);
    }
    // SAFETY: with @locked, kvm.ko holds the VM's mmu_lock (for read from
    // the TDP MMU's fault path, for write from the shadow MMU's).
    let lock = unsafe { MmuLocked::assume(kvm) };
    crate::retry::must_retry(&lock, mmu_seq as u64, gfn)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking its `check_mmio_spte` hook documents (`kvm_tdp_mmu_provider.h`).
unsafe extern "C" fn check_mmio_spte(vcpu: *mut bindings::kvm_vcpu, spte: u64) -> bool {
    // SAFETY: a valid vCPU.
    crate::mmio::check(unsafe { Vcpu::from_raw(vcpu) }, Spte(spte))
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_zap_possible_nx_huge_page()`.
unsafe extern "C" fn zap_possible_nx_huge_page(
    kvm: *mut bindings::kvm,
    sp: *mut bindings::kvm_mmu_page,
) -> bool {
    // SAFETY: a bound VM (the module doc); kvm.ko's NX recovery holds mmu_lock for read.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    // SAFETY: as above.
    let lock = unsafe { MmuRead::assume(kvm) };
    // SAFETY: kvm.ko's NX recovery holds rcu_read_lock() around the call
    // (kvm_recover_nx_huge_pages()).
    let rcu = unsafe { CallerRcu::assume() };
    // SAFETY: kvm.ko took `sp` off the possible-NX-huge-page list under the
    // pages lock within that section; it is freed only a grace period after
    // a removal, so not before the section ends.
    let sp = unsafe { rcu.sp_from_raw(sp) };
    crate::zap::zap_possible_nx_huge_page(kvm, &lock, sp)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_age_gfn_range()`.
unsafe extern "C" fn age_gfn_range(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
) -> bool {
    // SAFETY: a bound VM (the module doc) and range; aging runs without mmu_lock.
    let (kvm, range) = unsafe { (Kvm::from_raw(kvm), GfnRange::from_raw(range)) };
    crate::age::age(kvm, range, crate::age::Aging::Clear)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_test_age_gfn()`.
unsafe extern "C" fn test_age_gfn(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
) -> bool {
    // SAFETY: a bound VM (the module doc) and range; aging runs without mmu_lock.
    let (kvm, range) = unsafe { (Kvm::from_raw(kvm), GfnRange::from_raw(range)) };
    crate::age::age(kvm, range, crate::age::Aging::Test)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_wrprot_slot()`.
unsafe extern "C" fn wrprot_slot(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
    min_level: c_int,
) -> bool {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for read.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    let Some(min_level) = leaf_level(min_level) else {
        return false;
    };
    // SAFETY: as above.
    let mut lock = unsafe { MmuRead::assume(kvm) };
    crate::dirty::wrprot_slot(kvm, &mut lock, slot, min_level)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_clear_dirty_slot()`.
unsafe extern "C" fn clear_dirty_slot(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
) {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for read.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    // SAFETY: as above.
    let mut lock = unsafe { MmuRead::assume(kvm) };
    crate::dirty::clear_dirty_slot(kvm, &mut lock, slot)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_clear_dirty_pt_masked()`.
unsafe extern "C" fn clear_dirty_pt_masked(
    kvm: *mut bindings::kvm,
    slot: *mut bindings::kvm_memory_slot,
    gfn: u64,
    mask: usize,
    wrprot: bool,
) {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for write.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot)) };
    // SAFETY: as above.
    let lock = unsafe { MmuWrite::assume(kvm) };
    crate::dirty::clear_dirty_pt_masked(kvm, &lock, slot, gfn, mask as u64, wrprot)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_write_protect_gfn()`.
unsafe extern "C" fn write_protect_gfn(
    kvm: *mut bindings::kvm,
    slot: *mut bindings::kvm_memory_slot,
    gfn: u64,
    min_level: c_int,
) -> bool {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for write.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot)) };
    let Some(min_level) = leaf_level(min_level) else {
        return false;
    };
    // SAFETY: as above.
    let lock = unsafe { MmuWrite::assume(kvm) };
    crate::dirty::write_protect_gfn(kvm, &lock, slot, gfn, min_level)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_recover_huge_pages()`.
unsafe extern "C" fn recover_huge_pages(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
) {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for read.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    // SAFETY: as above.
    let mut lock = unsafe { MmuRead::assume(kvm) };
    crate::huge_pages::recover(kvm, &mut lock, slot)
}

/// # Safety
///
/// Called by kvm.ko through the ops table, with the arguments and the
/// locking of `kvm_tdp_mmu_try_split_huge_pages()`.
unsafe extern "C" fn try_split_huge_pages(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
    start: u64,
    end: u64,
    target_level: c_int,
    shared: bool,
) {
    // SAFETY: a bound VM (the module doc) and memslot; mmu_lock held for read if `shared`,
    // else for write.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    let Some(target_level) = leaf_level(target_level) else {
        return;
    };
    if shared {
        // SAFETY: as above.
        let mut lock = unsafe { MmuRead::assume(kvm) };
        crate::huge_pages::try_split(kvm, &mut lock, slot, start, end, target_level)
    } else {
        // SAFETY: as above.
        let mut lock = unsafe { MmuWrite::assume(kvm) };
        crate::huge_pages::try_split(kvm, &mut lock, slot, start, end, target_level)
    }
}
