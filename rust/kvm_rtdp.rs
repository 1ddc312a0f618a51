// SPDX-License-Identifier: GPL-2.0

//! kvm_rtdp: the x86 KVM TDP MMU, in Rust.
//!
//! The module will serve the TDP MMU of VMs that a patched kvm.ko binds to it
//! (see `Documentation/`). Until kvm.ko has the provider interface, it carries
//! the MMU's pure logic and its KUnit suites, which run at load.
//!
//! The pure logic lives in `rust/core/src/`, one file per concept, and is
//! compiled both here and into the host crate `rtdp-core` for `cargo test`.

use kernel::prelude::*;

#[path = "core/src/level.rs"]
pub mod level;
#[path = "core/src/mmio_gen.rs"]
pub mod mmio_gen;

mod tests;

module! {
    type: KvmRtdp,
    name: "kvm_rtdp",
    authors: ["rtdp developers"],
    description: "x86 KVM TDP MMU in Rust",
    license: "GPL",
}

/// Entries of `arch/x86/kvm/mmu/tdp_mmu.h` that a TDP MMU provider can serve.
const TDP_MMU_ENTRIES: usize = 21;

struct KvmRtdp;

impl kernel::Module for KvmRtdp {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "loaded; serving 0/{} TDP MMU entries: kvm.ko has no provider interface yet, VMs use the C TDP MMU\n",
            TDP_MMU_ENTRIES
        );
        Ok(KvmRtdp)
    }
}

impl Drop for KvmRtdp {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
