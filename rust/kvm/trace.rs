// SPDX-License-Identifier: GPL-2.0

//! kvm.ko's kvmmmu events (`arch/x86/kvm/mmu/mmutrace.h`), which kvm_rtdp
//! emits where the built-in TDP MMU emits them, with the same arguments:
//! a trace of a VM reads the same whichever MMU serves it.
//!
//! Each function tests the event's static key, from the table of
//! tracepoints kvm.ko exports for providers (patch 0009), and calls kvm.ko
//! to emit the event only while it is enabled; in a kernel without
//! tracepoints it compiles to nothing. `kvm_mmu_get_page` needs nothing
//! here: `kvm_tdp_mmu_provider_init_sp()` emits it for every page table.

#[cfg(CONFIG_TRACEPOINTS)]
use kernel::bindings;
use kernel::error::Result;

use super::{Fault, Sp, Sptep};
use crate::level::Level;
use crate::mmio_gen::MmioGen;
use crate::spte::Spte;

/// Whether the event `event` (a `KVM_TDP_MMU_TRACE_*`) is enabled.
#[cfg(CONFIG_TRACEPOINTS)]
#[inline]
fn enabled(event: u32) -> bool {
    // SAFETY: kvm.ko's table is constant and every entry points to one of
    // its tracepoints, which live as long as kvm.ko, which this module
    // depends on. The index is one of the enum's values, below its count.
    let tp = unsafe { bindings::kvm_tdp_mmu_provider_tracepoints[event as usize] };
    // SAFETY: as above; the key's count is read once, as
    // static_key_count() does (an event being enabled counts from when
    // the count is positive).
    unsafe { core::ptr::read_volatile(&raw const (*tp).key.key.enabled.counter) > 0 }
}

/// Emit `event` with `$call`, the unsafe call of its kvm.ko function, if it
/// is enabled; the arguments are used either way.
macro_rules! emit {
    ($event:ident, $call:expr, $($arg:expr),*) => {{
        #[cfg(CONFIG_TRACEPOINTS)]
        if enabled(bindings::$event) {
            $call
        }
        #[cfg(not(CONFIG_TRACEPOINTS))]
        {
            $( let _ = $arg; )*
        }
    }};
}

/// The page table `sp` is being removed from the tree (`handle_removed_pt()`).
pub(crate) fn prepare_zap_page(sp: Sp<'_>) {
    emit!(
        KVM_TDP_MMU_TRACE_prepare_zap_page,
        // SAFETY: `sp` is valid for its lifetime, which covers the call.
        unsafe { bindings::kvm_tdp_mmu_provider_trace_prepare_zap_page(sp.raw()) },
        sp
    )
}

/// A fault installed the MMIO SPTE `spte` for `gfn` at `sptep`.
pub(crate) fn mark_mmio(sptep: Sptep<'_>, gfn: u64, spte: Spte) {
    emit!(
        KVM_TDP_MMU_TRACE_mark_mmio_spte,
        // SAFETY: plain values and the SPTE's address, only printed.
        unsafe { bindings::kvm_tdp_mmu_provider_trace_mark_mmio_spte(sptep.raw(), gfn, spte.0) },
        sptep,
        gfn,
        spte
    )
}

/// The MMIO SPTE `spte`, of generation `spte_gen`, was checked against the
/// vCPU's generation `kvm_gen` (`check_mmio_spte()`).
pub(crate) fn check_mmio(spte: Spte, kvm_gen: MmioGen, spte_gen: MmioGen) {
    emit!(
        KVM_TDP_MMU_TRACE_check_mmio_spte,
        // SAFETY: plain values.
        unsafe {
            bindings::kvm_tdp_mmu_provider_trace_check_mmio_spte(
                spte.0,
                kvm_gen.get(),
                spte_gen.get(),
            )
        },
        spte,
        kvm_gen,
        spte_gen
    )
}

/// A fault installed the leaf SPTE now at `sptep`, for `gfn`.
pub(crate) fn set_spte(sptep: Sptep<'_>, gfn: u64) {
    emit!(
        KVM_TDP_MMU_TRACE_set_spte,
        // SAFETY: `sptep` is valid for its lifetime, which covers the call.
        unsafe {
            bindings::kvm_tdp_mmu_provider_trace_set_spte(
                sptep.level().get().into(),
                gfn,
                sptep.raw(),
            )
        },
        sptep,
        gfn
    )
}

/// `fault`, adjusted for huge pages, is about to be mapped in a root whose
/// guest access is `access`.
pub(crate) fn spte_requested(fault: &Fault, access: u32) {
    emit!(
        KVM_TDP_MMU_TRACE_spte_requested,
        // SAFETY: `fault` is valid while borrowed. A role's access is 3
        // bits, which fit the `u8` the event takes.
        unsafe { bindings::kvm_tdp_mmu_provider_trace_spte_requested(fault.raw(), access as u8) },
        fault,
        access
    )
}

/// The SPTE of address space `as_id` at `gfn` and `level` changed from
/// `old` to `new`.
pub(crate) fn spte_changed(as_id: i32, gfn: u64, level: Level, old: Spte, new: Spte) {
    emit!(
        KVM_TDP_MMU_TRACE_spte_changed,
        // SAFETY: plain values.
        unsafe {
            bindings::kvm_tdp_mmu_provider_trace_spte_changed(
                as_id,
                gfn,
                level.get().into(),
                old.0,
                new.0,
            )
        },
        as_id,
        gfn,
        level,
        old,
        new
    )
}

/// An attempt to split the huge SPTE `huge` at `gfn` and `level` into a
/// table of smaller pages, and its outcome.
pub(crate) fn split_huge_page(gfn: u64, huge: Spte, level: Level, result: Result) {
    emit!(
        KVM_TDP_MMU_TRACE_split_huge_page,
        // SAFETY: plain values.
        unsafe {
            bindings::kvm_tdp_mmu_provider_trace_split_huge_page(
                gfn,
                huge.0,
                level.get().into(),
                result.err().map_or(0, |e| e.to_errno()),
            )
        },
        gfn,
        huge,
        level,
        result
    )
}
