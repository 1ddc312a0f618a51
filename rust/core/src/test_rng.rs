// SPDX-License-Identifier: GPL-2.0

//! Deterministic pseudo-random numbers for the host property tests.

/// xorshift64: fast, reproducible, good enough to pick test cases.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    /// The next value; never returns to 0 from a non-zero seed.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
