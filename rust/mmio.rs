// SPDX-License-Identifier: GPL-2.0

//! MMIO SPTEs: made by the fault path for gfns without a memslot, and
//! checked by kvm.ko's MMIO fault handler (the `check_mmio_spte` hook).
//!
//! The encoding is `crate::mmio_gen`'s, bit for bit that of `spte.c`:
//! mmu.c decodes the gfn and access of every MMIO SPTE, and the shadow MMU
//! makes MMIO SPTEs of its own (for nested guests) that the check validates
//! too.
//!
//! # Invariants
//!
//! An MMIO SPTE is used only while the memslot generation it carries is the
//! vCPU's current one and no memslot update is in flight: an SPTE made
//! during an update carries a generation that the update moves past, so it
//! never validates.

use crate::kvm::{trace, Sp, Vcpu};
use crate::mmio_gen::{mmio_spte_is_current, MmioGen, GEN_UPDATE_IN_PROGRESS};
use crate::spte::Spte;

/// The MMIO SPTE for `gfn` in `sp`, under the vCPU's current
/// memslot generation.
pub(crate) fn make(vcpu: &Vcpu, sp: Sp<'_>, gfn: u64) -> Spte {
    let masks = vcpu.kvm().mmio_masks();
    Spte(masks.make(vcpu.memslots_generation(), gfn, sp.access().into()))
}

/// Whether the MMIO SPTE `spte` may be used by `vcpu`.
pub(crate) fn check(vcpu: &Vcpu, spte: Spte) -> bool {
    let gen = vcpu.memslots_generation();
    // Like check_mmio_spte(), the event reports generations compared; none
    // are while a memslot update is in flight.
    if gen & GEN_UPDATE_IN_PROGRESS == 0 {
        trace::check_mmio(spte, MmioGen::of_memslots(gen), MmioGen::of_spte(spte.0));
    }
    mmio_spte_is_current(gen, spte.0)
}
