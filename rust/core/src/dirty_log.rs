// SPDX-License-Identifier: GPL-2.0

//! The pages of one `KVM_CLEAR_DIRTY_LOG` / `KVM_GET_DIRTY_LOG` step: 64
//! 4 KiB pages from a base gfn, one bit each (`clear_dirty_pt_masked`).

/// The gfns of a dirty-log word still to be handled.
///
/// # Invariants
///
/// Bit `i` of `mask` set means `base + i` is still to be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GfnMask {
    base: u64,
    mask: u64,
}

impl GfnMask {
    /// Bits per word of the dirty bitmap (`BITS_PER_LONG`).
    pub const BITS: u64 = 64;

    /// The gfns `base + i` for every bit `i` set in `mask`.
    pub const fn new(base: u64, mask: u64) -> Self {
        GfnMask { base, mask }
    }

    /// Whether every gfn was handled.
    pub const fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// The first gfn still to be handled (`base + __ffs(mask)`), or the end
    /// of the window when none is.
    pub const fn first(&self) -> u64 {
        if self.mask == 0 {
            self.end()
        } else {
            self.base + self.mask.trailing_zeros() as u64
        }
    }

    /// The end of the window, exclusive.
    pub const fn end(&self) -> u64 {
        self.base + Self::BITS
    }

    /// Forget the gfns below `gfn`: they have nothing to handle (no 4 KiB
    /// mapping).
    pub fn drop_below(&mut self, gfn: u64) {
        let bits = gfn.saturating_sub(self.base);
        // INVARIANT: only bits for gfns below `gfn` are cleared.
        if bits >= Self::BITS {
            self.mask = 0;
        } else {
            self.mask &= !((1u64 << bits) - 1);
        }
    }

    /// The first gfn still to be handled if it is below `end`; it no longer
    /// is. Jumps from set bit to set bit, as `__ffs()` does.
    #[inline]
    pub fn take_first_below(&mut self, end: u64) -> Option<u64> {
        if self.mask == 0 {
            return None;
        }
        let gfn = self.base + u64::from(self.mask.trailing_zeros());
        if gfn >= end {
            return None;
        }
        // INVARIANT: the lowest set bit, `gfn`'s, is handled from now on.
        self.mask &= self.mask - 1;
        Some(gfn)
    }

    /// Whether `gfn` is still to be handled; if so, it no longer is.
    pub fn take(&mut self, gfn: u64) -> bool {
        let Some(bit) = gfn.checked_sub(self.base) else {
            return false;
        };
        if bit >= Self::BITS || self.mask & 1 << bit == 0 {
            return false;
        }
        // INVARIANT: `gfn` is handled from now on.
        self.mask &= !(1 << bit);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    #[test]
    fn every_set_bit_is_taken_once() {
        let mut rng = XorShift(11);
        for _ in 0..1000 {
            let base = rng.next() >> 20;
            let mask = rng.next();
            let mut m = GfnMask::new(base, mask);
            assert_eq!(m.first(), base + mask.trailing_zeros() as u64);
            let mut taken = 0u64;
            // The walk visits the window in order, from the first bit.
            for gfn in m.first()..m.end() {
                if m.take(gfn) {
                    taken |= 1 << (gfn - base);
                }
                assert!(!m.take(gfn));
            }
            assert_eq!(taken, mask);
            assert!(m.is_empty());
        }
    }

    /// Jumping: in windows split at random ends, every set bit comes out
    /// once, in order, and only below its end; dropped bits never do.
    #[test]
    fn jumps_visit_set_bits_in_order() {
        let mut rng = XorShift(29);
        for _ in 0..1000 {
            let base = rng.next() >> 20;
            let mask = rng.next();
            let cut = base + rng.below(GfnMask::BITS + 1);
            let drop = base + rng.below(GfnMask::BITS + 1);
            let mut m = GfnMask::new(base, mask);
            m.drop_below(drop);
            let mut seen = 0u64;
            let mut last = None;
            while let Some(gfn) = m.take_first_below(cut) {
                assert!(gfn >= drop && gfn < cut);
                assert!(last.map_or(true, |l| l < gfn));
                last = Some(gfn);
                seen |= 1 << (gfn - base);
            }
            while let Some(gfn) = m.take_first_below(m.end()) {
                assert!(gfn >= cut);
                seen |= 1 << (gfn - base);
            }
            let kept = if drop - base >= 64 {
                0
            } else {
                mask & !((1u64 << (drop - base)) - 1)
            };
            assert_eq!(seen, kept);
            assert!(m.is_empty());
        }
    }

    #[test]
    fn outside_the_window_is_never_taken() {
        let mut m = GfnMask::new(1000, u64::MAX);
        assert!(!m.take(999));
        assert!(!m.take(1064));
        assert!(!m.take(0));
        assert!(m.take(1063));
        assert!(m.take(1000));
        let mut empty = GfnMask::new(5, 0);
        assert!(empty.is_empty());
        assert_eq!(empty.first(), empty.end());
        assert!(!empty.take(5));
    }
}
