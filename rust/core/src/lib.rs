// SPDX-License-Identifier: GPL-2.0

//! Pure logic of the kvm_rtdp module, built for the host.
//!
//! Every module below is also compiled into `kvm_rtdp.ko` from the same source
//! file (see `rust/kvm_rtdp.rs`), so what `cargo test` checks here is exactly
//! what the kernel runs. These files may use only `core`: no allocation, no
//! kernel or std items, no crate-level attributes.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod dirty_log;
pub mod freeze;
pub mod invalidations;
pub mod iter;
pub mod level;
pub mod mirror;
pub mod mmio_gen;
pub mod reclaim;
pub mod spte;
pub mod stats;

#[cfg(test)]
mod test_rng;
