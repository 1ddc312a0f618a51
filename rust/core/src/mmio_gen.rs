// SPDX-License-Identifier: GPL-2.0

//! Memslot generation numbers carried by MMIO SPTEs.
//!
//! A gfn with no memslot is mapped by an MMIO SPTE: a non-present SPTE that
//! makes the next access exit straight to the MMIO path instead of walking the
//! memslots again. Such an SPTE caches "no memslot here", which stops being
//! true when userspace adds a memslot, so it records the memslot generation it
//! was made under and is used only while that generation is current.
//!
//! The layout is shared with `arch/x86/kvm/mmu/spte.h` of Linux 7.3, because
//! `mmu.c` reads and validates these SPTEs too: the low 7 bits of the
//! generation live in SPTE bits 3..=9 and the next 11 bits in bits 52..=62,
//! 18 bits in all. Bit 10 between them belongs to the MMIO value itself.
//!
//! The memslot generation proper is a 64-bit counter whose bit 63 says that a
//! memslot update is in progress. That flag is never stored in an SPTE; it is
//! checked when validating instead, so that an SPTE made while an update is in
//! flight can never validate, neither now nor after the update completes (the
//! update moves the generation on).

/// SPTE bits holding generation bits 0..=6.
pub const SPTE_GEN_LOW_MASK: u64 = genmask(9, 3);
/// SPTE bits holding generation bits 7..=17.
pub const SPTE_GEN_HIGH_MASK: u64 = genmask(62, 52);
/// Number of generation bits an MMIO SPTE can hold.
pub const MMIO_GEN_BITS: u32 = SPTE_GEN_LOW_MASK.count_ones() + SPTE_GEN_HIGH_MASK.count_ones();
/// Mask of the memslot generation bits that an MMIO SPTE records.
pub const MMIO_GEN_MASK: u64 = genmask(MMIO_GEN_BITS - 1, 0);
/// Memslot generation flag: an update of the memslots is in flight.
pub const GEN_UPDATE_IN_PROGRESS: u64 = 1 << 63;

const LOW_SHIFT: u32 = SPTE_GEN_LOW_MASK.trailing_zeros();
const LOW_BITS: u32 = SPTE_GEN_LOW_MASK.count_ones();
const HIGH_SHIFT: u32 = SPTE_GEN_HIGH_MASK.trailing_zeros() - LOW_BITS;

const _: () = assert!(MMIO_GEN_BITS == 18);
const _: () = assert!(SPTE_GEN_LOW_MASK & SPTE_GEN_HIGH_MASK == 0);
// Bit 11 is SPTE_MMU_PRESENT_MASK; MMIO SPTEs are not MMU-present.
const _: () = assert!((SPTE_GEN_LOW_MASK | SPTE_GEN_HIGH_MASK) & (1 << 11) == 0);

/// Bits `high..=low` set, like the kernel's `GENMASK_ULL(high, low)`.
pub const fn genmask(high: u32, low: u32) -> u64 {
    (u64::MAX >> (63 - high)) & (u64::MAX << low)
}

/// The part of a memslot generation that MMIO SPTEs record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioGen(u32);

impl MmioGen {
    /// The MMIO generation of the memslot generation `memslots_gen`.
    ///
    /// The update-in-progress flag and the bits above the 18 that fit are
    /// dropped, exactly as `make_mmio_spte()` does.
    pub const fn of_memslots(memslots_gen: u64) -> Self {
        Self((memslots_gen & MMIO_GEN_MASK) as u32)
    }

    /// The generation as a number in `0..(1 << MMIO_GEN_BITS)`.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// SPTE bits encoding this generation; OR them into an MMIO SPTE.
    pub const fn spte_bits(self) -> u64 {
        let gen = self.0 as u64;
        ((gen << LOW_SHIFT) & SPTE_GEN_LOW_MASK) | ((gen << HIGH_SHIFT) & SPTE_GEN_HIGH_MASK)
    }

    /// The generation recorded in `spte`; bits outside the generation fields
    /// are ignored.
    pub const fn of_spte(spte: u64) -> Self {
        let gen =
            ((spte & SPTE_GEN_LOW_MASK) >> LOW_SHIFT) | ((spte & SPTE_GEN_HIGH_MASK) >> HIGH_SHIFT);
        Self(gen as u32)
    }
}

/// Whether an MMIO SPTE may be used under memslot generation `memslots_gen`.
///
/// False while a memslot update is in progress, and false when the SPTE was
/// made under another generation (modulo the 18 bits it records). Matches
/// `check_mmio_spte()` in `mmu.c`.
pub const fn mmio_spte_is_current(memslots_gen: u64, spte: u64) -> bool {
    memslots_gen & GEN_UPDATE_IN_PROGRESS == 0
        && MmioGen::of_spte(spte).get() == MmioGen::of_memslots(memslots_gen).get()
}

/// How an MMIO SPTE places its gfn and access bits, as `spte.c` sets it up
/// for the host (`kvm_mmu_set_mmio_spte_mask()`, `kvm_mmu_reset_all_pte_masks()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioMasks {
    /// `kvm->arch.shadow_mmio_value`: the bits that make the SPTE MMIO.
    pub value: u64,
    /// `shadow_mmio_access_mask`: the guest access bits kept.
    pub access: u64,
    /// `shadow_nonpresent_or_rsvd_mask`: high gpa bits that are set in the
    /// SPTE (L1TF), the gpa bits found there moved up by [`RSVD_MASK_LEN`].
    pub nonpresent_or_rsvd: u64,
    /// `shadow_nonpresent_or_rsvd_lower_gfn_mask`: the gpa bits kept in place.
    pub nonpresent_or_rsvd_lower_gfn: u64,
}

/// `SHADOW_NONPRESENT_OR_RSVD_MASK_LEN`.
pub const RSVD_MASK_LEN: u32 = 5;

impl MmioMasks {
    /// The MMIO SPTE for `gfn` with guest `access`, made under memslot
    /// generation `memslots_gen` (`make_mmio_spte()`).
    pub const fn make(&self, memslots_gen: u64, gfn: u64, access: u64) -> u64 {
        let gpa = gfn << 12;
        MmioGen::of_memslots(memslots_gen).spte_bits()
            | self.value
            | (access & self.access)
            | gpa
            | self.nonpresent_or_rsvd
            | ((gpa & self.nonpresent_or_rsvd) << RSVD_MASK_LEN)
    }

    /// The gfn an MMIO SPTE maps (`get_mmio_spte_gfn()`).
    pub const fn gfn(&self, spte: u64) -> u64 {
        let gpa = (spte & self.nonpresent_or_rsvd_lower_gfn)
            | ((spte >> RSVD_MASK_LEN) & self.nonpresent_or_rsvd);
        gpa >> 12
    }

    /// The guest access an MMIO SPTE records (`get_mmio_spte_access()`).
    pub const fn access(&self, spte: u64) -> u64 {
        spte & self.access
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    /// Reference model: place generation bit i at its SPTE bit one at a time,
    /// straight from the layout described in spte.h.
    fn reference_bits(gen: u64) -> u64 {
        let mut spte = 0;
        for i in 0..18 {
            if gen & (1 << i) != 0 {
                spte |= 1 << if i < 7 { 3 + i } else { 52 + (i - 7) };
            }
        }
        spte
    }

    #[test]
    fn masks_match_spte_h() {
        assert_eq!(SPTE_GEN_LOW_MASK, 0x0000_0000_0000_03f8);
        assert_eq!(SPTE_GEN_HIGH_MASK, 0x7ff0_0000_0000_0000);
        assert_eq!(MMIO_GEN_MASK, 0x3_ffff);
        assert_eq!(genmask(63, 0), u64::MAX);
        assert_eq!(genmask(0, 0), 1);
    }

    #[test]
    fn every_generation_round_trips_and_matches_reference() {
        for gen in 0..(1u64 << MMIO_GEN_BITS) {
            let g = MmioGen::of_memslots(gen);
            let bits = g.spte_bits();
            assert_eq!(bits, reference_bits(gen), "gen {gen:#x}");
            assert_eq!(bits & !(SPTE_GEN_LOW_MASK | SPTE_GEN_HIGH_MASK), 0);
            assert_eq!(MmioGen::of_spte(bits), g);
        }
    }

    #[test]
    fn decoding_ignores_other_spte_bits() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let gen = rng.next() & MMIO_GEN_MASK;
            let noise = rng.next() & !(SPTE_GEN_LOW_MASK | SPTE_GEN_HIGH_MASK);
            let spte = noise | MmioGen::of_memslots(gen).spte_bits();
            assert_eq!(u64::from(MmioGen::of_spte(spte).get()), gen);
        }
    }

    #[test]
    fn update_in_progress_never_validates() {
        let mut rng = XorShift(42);
        for _ in 0..100_000 {
            let gen = rng.next() >> 1;
            let spte = MmioGen::of_memslots(gen).spte_bits();
            assert!(mmio_spte_is_current(gen, spte));
            assert!(!mmio_spte_is_current(gen | GEN_UPDATE_IN_PROGRESS, spte));
        }
    }

    #[test]
    fn other_generation_does_not_validate() {
        let spte = MmioGen::of_memslots(5).spte_bits();
        assert!(!mmio_spte_is_current(6, spte));
        assert!(!mmio_spte_is_current(4, spte));
        // Only 18 bits are recorded: 2^18 updates later the SPTE would look
        // current again, which is why kvm.ko zaps every root when the
        // recorded bits wrap (kvm_mmu_invalidate_mmio_sptes();
        // rtdp_mmio_gen_wrap_test).
        assert!(mmio_spte_is_current(5 + (1 << 18), spte));
    }

    /// An AMD host with NPT and 48 physical address bits: svm.c makes MMIO
    /// SPTEs present with reserved bits 48..=51 set; no L1TF.
    const AMD_NPT_48: MmioMasks = MmioMasks {
        value: genmask(51, 48) | 1,
        access: 0x6,
        nonpresent_or_rsvd: 0,
        nonpresent_or_rsvd_lower_gfn: genmask(47, 12),
    };

    /// An Intel host with EPT and L1TF, 46 cache address bits: EPT MMIO SPTEs
    /// are write/execute-only misconfigurations, and gpa bits 41..=45 are
    /// moved to 46..=50 while 41..=45 are set.
    const INTEL_EPT_L1TF_46: MmioMasks = MmioMasks {
        value: 0x6,
        access: 0,
        nonpresent_or_rsvd: genmask(45, 41),
        nonpresent_or_rsvd_lower_gfn: genmask(40, 12),
    };

    #[test]
    fn mmio_spte_round_trips_gfn_access_and_generation() {
        let mut rng = crate::test_rng::XorShift(0x6d6d_696f);
        for (masks, gfn_bits) in [(AMD_NPT_48, 35), (INTEL_EPT_L1TF_46, 33)] {
            for _ in 0..10_000 {
                let gfn = rng.next() & genmask(gfn_bits, 0);
                let gen = rng.next() & genmask(62, 0);
                let access = rng.next() & 0x7;
                let spte = masks.make(gen, gfn, access);
                assert_eq!(masks.gfn(spte), gfn);
                assert_eq!(masks.access(spte), access & masks.access);
                assert_eq!(spte & masks.value, masks.value);
                assert!(mmio_spte_is_current(gen, spte));
                assert!(!mmio_spte_is_current(gen | GEN_UPDATE_IN_PROGRESS, spte));
                assert_eq!(spte & (1 << 11), 0, "MMIO SPTEs are never MMU-present");
            }
        }
    }

    #[test]
    fn mmio_spte_hides_high_gpa_bits_for_l1tf() {
        // A gpa with bit 41 set: the SPTE has bits 41..=45 set whatever the
        // gpa (no usable address for a speculative walk) and the real bit 41
        // five places up, at 46; a gpa without it leaves 46 clear.
        let m = INTEL_EPT_L1TF_46;
        let spte = m.make(0, 1 << (41 - 12), 0);
        assert_eq!(spte & genmask(45, 41), genmask(45, 41));
        assert_ne!(spte & (1 << 46), 0);
        assert_eq!(m.gfn(spte), 1 << (41 - 12));
        let spte = m.make(0, 1, 0);
        assert_eq!(spte & genmask(45, 41), genmask(45, 41));
        assert_eq!(spte & (1 << 46), 0);
        assert_eq!(m.gfn(spte), 1);
    }
}
