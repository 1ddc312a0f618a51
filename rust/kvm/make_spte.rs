// SPDX-License-Identifier: GPL-2.0

//! SPTE values that kvm.ko's `spte.c` makes: the encodings that mmu.c, the
//! fast page fault and the shadow MMU rely on bit for bit.

use core::ffi::c_int;
use core::ptr::NonNull;

use kernel::bindings;

use super::{Kvm, RootRole};
use crate::level::Level;
use crate::spte::Spte;

/// The SPTE of a non-leaf entry pointing to `table`.
pub(crate) fn make_nonleaf_spte(table: NonNull<u64>) -> Spte {
    // SAFETY: reads KVM's configuration.
    let ad_enabled = unsafe { bindings::kvm_tdp_mmu_provider_ad_enabled() };
    // SAFETY: `table` is a page table; the helper only encodes its address.
    Spte(unsafe { bindings::make_nonleaf_spte(table.as_ptr(), !ad_enabled) })
}

/// Entry `index` of the table that splits the huge page `huge` into pages of
/// the level of `role`.
pub(crate) fn make_small_spte(kvm: &Kvm, huge: Spte, role: RootRole, index: usize) -> Spte {
    // SAFETY: a valid VM; the helper only computes a value.
    Spte(unsafe { bindings::make_small_spte(kvm.raw(), huge.0, role.0, index as c_int) })
}

/// The huge SPTE at `level` that maps what `small`, the first leaf below
/// it, maps and the rest of the range (`make_huge_spte()`).
pub(crate) fn make_huge_spte(kvm: &Kvm, small: Spte, level: Level) -> Spte {
    // SAFETY: a valid VM; a pure function of its arguments otherwise.
    Spte(unsafe { bindings::make_huge_spte(kvm.raw(), small.0, level.get().into()) })
}

/// The first gfn above what a TDP MMU walk may cover.
pub(crate) fn max_gfn_exclusive() -> u64 {
    // SAFETY: reads KVM's configuration.
    unsafe { bindings::kvm_tdp_mmu_provider_max_gfn_exclusive() }
}
