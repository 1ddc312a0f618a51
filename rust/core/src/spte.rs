// SPDX-License-Identifier: GPL-2.0

//! The SPTE format that the TDP MMU shares with `mmu.c`, fast page faults and
//! the shadow MMU (Linux 7.3 `arch/x86/kvm/mmu/spte.h`).
//!
//! Part of the format is fixed (the constants below). The rest depends on
//! whether the TDP tables are AMD NPT or Intel EPT, and kvm.ko decides it at
//! vendor-module load (`kvm_mmu_reset_all_pte_masks()`,
//! `kvm_mmu_set_ept_masks()`); that part is a [`Masks`] value here, so the
//! same code serves both and the tests check both.

use crate::level::Level;
use crate::mmio_gen::{SPTE_GEN_HIGH_MASK, SPTE_GEN_LOW_MASK};

/// Set in every SPTE backed by memory (MMU-present), whether or not the
/// hardware sees it as present; clear in MMIO and non-present SPTEs.
pub const MMU_PRESENT: u64 = 1 << 11;
/// Leaf bit of a 2 MiB or 1 GiB mapping (`PT_PAGE_SIZE_MASK`).
pub const PAGE_SIZE: u64 = 1 << 7;
/// Hardware-writable bit, the same bit in NPT and EPT (`PT_WRITABLE_MASK`).
pub const WRITABLE: u64 = 1 << 1;
/// Physical address bits of an SPTE (`SPTE_BASE_ADDR_MASK`, for kernels
/// without `CONFIG_DYNAMIC_PHYSICAL_MASK`).
pub const BASE_ADDR_MASK: u64 = ((1 << 52) - 1) & !0xfff;
/// The value of a non-present SPTE (bit 63 suppresses #VE under TDX).
pub const NONPRESENT: u64 = 1 << 63;
/// An SPTE that a thread owns while it changes it in several steps; anyone
/// else who reads it must retry and must not write it.
pub const FROZEN: u64 = NONPRESENT | 0x1a0;

/// Bits 60-61: how accessed/dirty state is tracked for this SPTE.
pub const TDP_AD_MASK: u64 = 3 << 60;
/// A/D bits in hardware (must be 0: bits 52-62 are reserved for NPT PAE).
pub const TDP_AD_ENABLED: u64 = 0;
/// No A/D bits: access tracking by making the SPTE non-present.
pub const TDP_AD_DISABLED: u64 = 1 << 60;
/// Dirty tracking by write-protection only.
pub const TDP_AD_WRPROT_ONLY: u64 = 2 << 60;

/// EPT read/write/execute bits and user-execute (`VMX_EPT_RWX_MASK`,
/// `VMX_EPT_USER_EXECUTABLE_MASK`).
const EPT_RWX_UX: u64 = 0x7 | 1 << 10;

/// The EPT bits an access-tracked SPTE keeps a copy of, read, execute and
/// user-execute (`SHADOW_ACC_TRACK_SAVED_BITS_MASK`), and where the copy
/// goes (`SHADOW_ACC_TRACK_SAVED_BITS_SHIFT`).
pub const ACC_TRACK_SAVED_BITS: u64 = 0x1 | 0x4 | 1 << 10;
/// See [`ACC_TRACK_SAVED_BITS`].
pub const ACC_TRACK_SAVED_SHIFT: u32 = 52;

const _: () = assert!(TDP_AD_MASK & ACC_TRACK_SAVED_BITS << ACC_TRACK_SAVED_SHIFT == 0);

const _: () = assert!(FROZEN & (MMU_PRESENT | EPT_RWX_UX) == 0);
const _: () = assert!(FROZEN & BASE_ADDR_MASK == 0);
const _: () = assert!(NONPRESENT & MMU_PRESENT == 0);
const _: () = assert!(MIRRORED & (BASE_ADDR_MASK | TDP_AD_MASK | MMU_PRESENT | NONPRESENT) == 0);
const _: () = assert!(MIRRORED & ACC_TRACK_SAVED_BITS << ACC_TRACK_SAVED_SHIFT == 0);
const _: () = assert!(MMU_PRESENT & (SPTE_GEN_LOW_MASK | SPTE_GEN_HIGH_MASK) == 0);

/// The mode-dependent SPTE bits, as kvm.ko sets them for NPT or EPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masks {
    /// Hardware accessed bit (`shadow_accessed_mask`).
    pub accessed: u64,
    /// Hardware dirty bit (`shadow_dirty_mask`).
    pub dirty: u64,
    /// KVM may make the SPTE writable without the MMU lock for write
    /// (`shadow_mmu_writable_mask`).
    pub mmu_writable: u64,
    /// The host mapping is writable (`shadow_host_writable_mask`).
    pub host_writable: u64,
    /// Bits cleared to track accesses when there are no A/D bits
    /// (`shadow_acc_track_mask`).
    pub acc_track: u64,
}

impl Masks {
    /// AMD NPT (and shadow paging): `kvm_mmu_reset_all_pte_masks()`.
    pub const NPT: Masks = Masks {
        accessed: 1 << 5,
        dirty: 1 << 6,
        mmu_writable: 1 << 10,
        host_writable: 1 << 9,
        acc_track: 0,
    };

    /// Intel EPT: `kvm_mmu_set_ept_masks()`.
    pub const EPT: Masks = Masks {
        accessed: 1 << 8,
        dirty: 1 << 9,
        mmu_writable: 1 << 55,
        host_writable: 1 << 53,
        acc_track: EPT_RWX_UX,
    };
}

/// Marks a present leaf that is mirrored: every change of it goes to an
/// external page table first (see [`crate::mirror`]). Kept by kvm_rtdp in
/// the private leaves of a VM whose external table is a software stand-in
/// (a TDX VM's mirror SPTEs are known by their root instead). Bit 56 is
/// ignored by the CPU in EPT and in long-mode NPT entries, and no other
/// SPTE bit of KVM's uses it in a present SPTE (the saved access-tracking
/// bits are 52, 54 and 62; the MMIO generation is in non-present ones).
pub const MIRRORED: u64 = 1 << 56;

/// One SPTE value, as read from a page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spte(pub u64);

impl Spte {
    /// Whether another thread is changing this SPTE (`is_frozen_spte`).
    pub const fn is_frozen(self) -> bool {
        self.0 == FROZEN
    }

    /// Whether the SPTE is a present leaf marked [`MIRRORED`].
    pub const fn is_mirrored(self) -> bool {
        self.is_present() && self.0 & MIRRORED != 0
    }

    /// Whether the SPTE maps memory or a lower table (`is_shadow_present_pte`).
    pub const fn is_present(self) -> bool {
        self.0 & MMU_PRESENT != 0
    }

    /// Whether a present SPTE at `level` maps memory rather than a table
    /// (`is_last_spte`).
    pub const fn is_leaf(self, level: Level) -> bool {
        level.get() == Level::PG_4K.get() || self.0 & PAGE_SIZE != 0
    }

    /// Whether the SPTE has the page-size bit: a huge page, when present
    /// above 4KiB (`is_large_pte`).
    pub const fn is_huge(self) -> bool {
        self.0 & PAGE_SIZE != 0
    }

    /// Page frame the SPTE points to: memory for a leaf, the next table
    /// otherwise (`spte_to_pfn`).
    pub const fn pfn(self) -> u64 {
        (self.0 & BASE_ADDR_MASK) >> 12
    }

    /// Whether A/D bits are tracked in hardware for this present SPTE
    /// (`spte_ad_enabled`).
    pub const fn ad_enabled(self) -> bool {
        self.0 & TDP_AD_MASK != TDP_AD_DISABLED
    }

    /// Whether the hardware may write through this SPTE (`is_writable_pte`).
    pub const fn is_writable(self) -> bool {
        self.0 & WRITABLE != 0
    }

    /// Whether KVM may make this SPTE writable (`is_mmu_writable_spte`).
    pub const fn is_mmu_writable(self, m: &Masks) -> bool {
        self.0 & m.mmu_writable != 0
    }

    /// Whether this present SPTE was accessed since it was last aged
    /// (`is_accessed_spte`): its Accessed bit with A/D bits, else not made
    /// non-present for access tracking.
    pub const fn is_accessed(self, m: &Masks) -> bool {
        if self.ad_enabled() && m.accessed != 0 {
            self.0 & m.accessed != 0
        } else {
            !self.is_access_tracked(m)
        }
    }

    /// The SPTE aged: its Accessed bit cleared, or without A/D bits, made
    /// non-present to the hardware with the bits that did that saved, so
    /// the next access faults (`mark_spte_for_access_track`). `None` when
    /// the saved-bit positions are in use: such an SPTE cannot be tracked
    /// without losing bits (kvm.ko warns then).
    pub const fn aged(self, m: &Masks) -> Option<Spte> {
        if self.ad_enabled() {
            return Some(Spte(self.0 & !m.accessed));
        }
        if self.is_access_tracked(m) {
            return Some(self);
        }
        if self.0 & ACC_TRACK_SAVED_BITS << ACC_TRACK_SAVED_SHIFT != 0 {
            return None;
        }
        let saved = (self.0 & ACC_TRACK_SAVED_BITS) << ACC_TRACK_SAVED_SHIFT;
        Some(Spte((self.0 | saved) & !(m.acc_track | m.accessed)))
    }

    /// The SPTE write-protected for good: neither the hardware nor the fast
    /// page fault may make it writable again; only a fault under
    /// `mmu_lock` can (`kvm_tdp_mmu_write_protect_gfn`).
    pub const fn write_protected(self, m: &Masks) -> Spte {
        Spte(self.0 & !(WRITABLE | m.mmu_writable))
    }

    /// The bit dirty logging clears in a leaf SPTE to notice the next
    /// write: the Dirty bit when the hardware sets it, the Writable bit
    /// when writes must fault instead (`write_protect`: no A/D bits, or
    /// the CPU's dirty log would record L2 addresses, or the caller asks).
    pub const fn dirty_bit(m: &Masks, write_protect: bool) -> u64 {
        if write_protect {
            WRITABLE
        } else {
            m.dirty
        }
    }

    /// Whether this present SPTE is made non-present for access tracking
    /// (`is_access_track_spte`).
    pub const fn is_access_tracked(self, m: &Masks) -> bool {
        !self.ad_enabled() && self.0 & m.acc_track == 0
    }

    /// Whether replacing the present leaf `self` with `new` for the same
    /// page must flush TLBs (`leaf_spte_change_needs_tlb_flush`): only when
    /// it takes away MMU-writability, which a vCPU's cached writable
    /// translation would still have.
    pub const fn leaf_change_needs_tlb_flush(self, new: Spte, m: &Masks) -> bool {
        self.is_mmu_writable(m) && !new.is_mmu_writable(m)
    }

    /// The physical address of the table a present non-leaf SPTE links
    /// (`spte_to_child_pt()`): its bits 12 up to the kernel's
    /// `__PHYSICAL_MASK`, `phys_mask`. With memory encryption (SME) the
    /// C-bit sits above that mask in every entry and is not address.
    pub const fn table_phys(self, phys_mask: u64) -> u64 {
        self.0 & phys_mask & !0xfff
    }

    /// The invariants of a present leaf that `check_spte_writable_invariants`
    /// enforces: MMU-writable implies host-writable, and writable implies
    /// MMU-writable.
    pub const fn writable_invariants_hold(self, m: &Masks) -> bool {
        if self.is_mmu_writable(m) {
            self.0 & m.host_writable != 0
        } else {
            !self.is_writable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    #[test]
    fn fixed_values_match_spte_h() {
        assert_eq!(FROZEN, 0x8000_0000_0000_01a0);
        assert_eq!(BASE_ADDR_MASK, 0x000f_ffff_ffff_f000);
        assert_eq!(MMU_PRESENT, 0x800);
        assert_eq!(TDP_AD_MASK, 0x3000_0000_0000_0000);
    }

    #[test]
    fn frozen_is_nothing_else() {
        let f = Spte(FROZEN);
        assert!(f.is_frozen());
        assert!(!f.is_present());
        assert!(!f.is_writable());
        assert_eq!(f.pfn(), 0);
        assert!(!Spte(NONPRESENT).is_frozen());
        let mut rng = XorShift(7);
        for _ in 0..100_000 {
            let v = rng.next();
            assert_eq!(Spte(v).is_frozen(), v == FROZEN);
        }
    }

    #[test]
    fn mode_masks_stay_clear_of_the_fixed_layout() {
        // The MMIO generation bits may share positions with the writable
        // bookkeeping (NPT bit 9, EPT bits 53 and 55): they live in MMIO
        // SPTEs, which are never MMU-present, the others only in present ones.
        let gen = SPTE_GEN_LOW_MASK | SPTE_GEN_HIGH_MASK;
        assert_ne!(Masks::NPT.host_writable & gen, 0);
        assert_ne!(Masks::EPT.mmu_writable & gen, 0);
        let fixed = MMU_PRESENT | TDP_AD_MASK;
        for m in [Masks::NPT, Masks::EPT] {
            assert_eq!(m.mmu_writable & fixed, 0);
            assert_eq!(m.host_writable & (fixed | BASE_ADDR_MASK), 0);
            assert_eq!(m.mmu_writable & BASE_ADDR_MASK, 0);
            assert_eq!(m.mmu_writable & m.host_writable, 0);
            assert_eq!((m.accessed | m.dirty) & (MMU_PRESENT | TDP_AD_MASK), 0);
        }
        // EPT's saved R/X/UX bits (52, 54, 62) and A/D type must not
        // overlap its writable bookkeeping.
        let saved = ACC_TRACK_SAVED_BITS << ACC_TRACK_SAVED_SHIFT;
        assert_eq!(
            (Masks::EPT.mmu_writable | Masks::EPT.host_writable) & saved,
            0
        );
        // The mirrored mark is no bit of either mode's bookkeeping.
        for m in [Masks::NPT, Masks::EPT] {
            let used = m.mmu_writable | m.host_writable | m.accessed | m.dirty;
            assert_eq!(MIRRORED & used, 0);
        }
        // ... and marks present leaves only: an MMIO SPTE may have bit 56.
        assert!(!Spte(MIRRORED | SPTE_GEN_HIGH_MASK).is_mirrored());
        assert!(Spte(MMU_PRESENT | MIRRORED).is_mirrored());
    }

    #[test]
    fn leaf_and_pfn() {
        let pfn = 0x12_3456;
        let table = Spte(MMU_PRESENT | pfn << 12 | 0x7);
        let huge = Spte(table.0 | PAGE_SIZE);
        assert_eq!(table.pfn(), pfn);
        assert!(table.is_leaf(Level::PG_4K));
        assert!(!table.is_leaf(Level::PG_2M));
        assert!(huge.is_leaf(Level::PG_2M));
        assert!(huge.is_leaf(Level::PG_1G));
        // Bits above 51 never leak into the pfn.
        assert_eq!(Spte(u64::MAX).pfn(), (1 << 40) - 1);
    }

    #[test]
    fn ad_tracking_types() {
        let p = MMU_PRESENT;
        assert!(Spte(p | TDP_AD_ENABLED).ad_enabled());
        assert!(Spte(p | TDP_AD_WRPROT_ONLY).ad_enabled());
        assert!(!Spte(p | TDP_AD_DISABLED).ad_enabled());
        let m = Masks::EPT;
        assert!(Spte(p | TDP_AD_DISABLED).is_access_tracked(&m));
        assert!(!Spte(p | TDP_AD_DISABLED | 0x1).is_access_tracked(&m));
        assert!(!Spte(p).is_access_tracked(&m));
    }

    #[test]
    fn aging_with_ad_bits_clears_only_accessed() {
        let m = Masks::NPT;
        let young = Spte(MMU_PRESENT | 0x1234 << 12 | WRITABLE | m.accessed | m.dirty);
        assert!(young.is_accessed(&m));
        let old = young.aged(&m).unwrap();
        assert_eq!(old.0, young.0 & !m.accessed);
        assert!(!old.is_accessed(&m));
        assert!(old.is_present() && old.is_writable());
        assert_eq!(old.aged(&m), Some(old));
    }

    #[test]
    fn aging_without_ad_bits_saves_and_clears_rwx() {
        let m = Masks::EPT;
        let rwx = 0x7 | 1 << 10;
        let young = Spte(MMU_PRESENT | TDP_AD_DISABLED | 0x42 << 12 | rwx | m.host_writable);
        assert!(young.is_accessed(&m));
        let old = young.aged(&m).unwrap();
        assert!(!old.is_accessed(&m));
        // Still MMU-present: KVM restores it on the next fault.
        assert!(old.is_present());
        assert_eq!(old.0 & rwx, 0);
        assert_eq!(old.pfn(), 0x42);
        assert_eq!(
            old.0 >> ACC_TRACK_SAVED_SHIFT & ACC_TRACK_SAVED_BITS,
            ACC_TRACK_SAVED_BITS
        );
        assert_eq!(old.aged(&m), Some(old));
        // Saved-bit positions in use: refused rather than lost.
        let odd = Spte(young.0 | 1 << ACC_TRACK_SAVED_SHIFT);
        assert_eq!(odd.aged(&m), None);
    }

    #[test]
    fn write_protection_and_dirty_bit() {
        for m in [Masks::NPT, Masks::EPT] {
            let w = Spte(MMU_PRESENT | WRITABLE | m.mmu_writable | m.host_writable | m.dirty);
            let p = w.write_protected(&m);
            assert!(!p.is_writable() && !p.is_mmu_writable(&m));
            assert!(p.writable_invariants_hold(&m));
            assert_eq!(p.0 & m.host_writable, m.host_writable);
            assert_eq!(Spte::dirty_bit(&m, true), WRITABLE);
            assert_eq!(Spte::dirty_bit(&m, false), m.dirty);
            assert_eq!(w.0 & !Spte::dirty_bit(&m, false) & m.dirty, 0);
        }
    }

    #[test]
    fn the_c_bit_is_not_part_of_a_table_address() {
        // SME with the C-bit at 47: physical addresses have 47 bits.
        let phys_mask = (1u64 << 47) - 1;
        let link = Spte(MMU_PRESENT | (1 << 47) | 0x1234_5000 | 0x7);
        assert_eq!(link.table_phys(phys_mask), 0x1234_5000);
        // Without encryption the mask is 52 bits and takes everything.
        let plain = Spte(MMU_PRESENT | 0x000f_0000_0000_1000 | 0x7);
        assert_eq!(plain.table_phys((1 << 52) - 1), 0x000f_0000_0000_1000);
    }

    #[test]
    fn only_losing_mmu_writability_needs_a_flush() {
        for m in [Masks::NPT, Masks::EPT] {
            let ro = Spte(MMU_PRESENT);
            let w = Spte(MMU_PRESENT | WRITABLE | m.mmu_writable | m.host_writable);
            assert!(!ro.leaf_change_needs_tlb_flush(w, &m), "made writable");
            assert!(w.leaf_change_needs_tlb_flush(ro, &m), "write-protected");
            assert!(!w.leaf_change_needs_tlb_flush(w, &m));
            assert!(!ro.leaf_change_needs_tlb_flush(ro, &m));
        }
    }

    #[test]
    fn writable_invariants() {
        for m in [Masks::NPT, Masks::EPT] {
            let base = MMU_PRESENT;
            assert!(Spte(base).writable_invariants_hold(&m));
            assert!(!Spte(base | WRITABLE).writable_invariants_hold(&m));
            assert!(!Spte(base | m.mmu_writable).writable_invariants_hold(&m));
            let full = base | WRITABLE | m.mmu_writable | m.host_writable;
            assert!(Spte(full).writable_invariants_hold(&m));
            assert!(Spte(full & !WRITABLE).writable_invariants_hold(&m));
        }
    }
}
