// SPDX-License-Identifier: GPL-2.0

//! kvm_rtdp: the x86 KVM TDP MMU, in Rust.
//!
//! At load the module registers with kvm.ko as its TDP MMU provider; VMs
//! created while `bind_new_vms` is set (module parameter, then
//! `kvm_rtdp/bind_new_vms` in debugfs) are bound to it for their lifetime
//! (see `Documentation/provider.md`). Entries it does not serve yet run
//! kvm.ko's built-in code on the same page tables.
//!
//! Three layers: `crate::entries` turns the raw arguments of kvm.ko's calls
//! into the types of `crate::kvm`, the boundary with kvm.ko (every `unsafe`
//! block is in those two); the logic modules (`#![deny(unsafe_code)]`) are
//! written in those types; the pure logic lives in `rust/core/src/`, one
//! file per concept, compiled both here and into the host crate `rtdp-core`
//! for `cargo test`.

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::prelude::*;

#[path = "core/src/dirty_log.rs"]
pub mod dirty_log;
#[path = "core/src/freeze.rs"]
pub mod freeze;
#[path = "core/src/invalidations.rs"]
pub mod invalidations;
#[path = "core/src/iter.rs"]
pub mod iter;
#[path = "core/src/level.rs"]
pub mod level;
#[path = "core/src/mirror.rs"]
pub mod mirror;
#[path = "core/src/mmio_gen.rs"]
pub mod mmio_gen;
#[path = "core/src/reclaim.rs"]
pub mod reclaim;
#[path = "core/src/spte.rs"]
pub mod spte;
#[path = "core/src/stats.rs"]
pub mod stats;

mod age;
mod changes;
#[cfg(rtdp_compile_fail)]
mod compile_fail;
mod dirty;
mod entries;
mod fault;
mod huge_pages;
mod kvm;
mod lockless;
mod mmio;
mod pages;
mod retry;
mod roots;
mod tests;
mod vm;
mod zap;

module! {
    type: KvmRtdp,
    name: "kvm_rtdp",
    authors: ["rtdp developers"],
    description: "x86 KVM TDP MMU in Rust",
    license: "GPL",
    params: {
        bind_new_vms: bool {
            default: true,
            description: "Bind the VMs created after loading to kvm_rtdp (kvm_rtdp/bind_new_vms in debugfs changes it)",
        },
        rcu_budget: u64 {
            default: 4096,
            description: "Removed page tables a VM may have waiting for an RCU grace period before zaps that may sleep wait for one (per VM; kvm_rtdp/<vm>/rcu changes it)",
        },
    },
}

/// Whether a VM being created is bound to kvm_rtdp: the module parameter
/// at load, then what `kvm_rtdp/bind_new_vms` was last set to. A VM that is
/// not bound runs on kvm.ko's TDP MMU, as its debugfs `tdp_mmu` says, so
/// that one process can compare the two (`rtdp_differential_test`).
static BIND_NEW_VMS: AtomicBool = AtomicBool::new(false);

fn bind_new_vms() -> bool {
    BIND_NEW_VMS.load(Ordering::Relaxed)
}

/// The budget of deferred freeing given to new VMs (`crate::reclaim`).
fn rcu_budget() -> u64 {
    module_parameters::rcu_budget.value()
}

struct KvmRtdp {
    // Dropped in this order: no VM can be bound once the provider is gone.
    _provider: kvm::ProviderRegistration,
    _debugfs: kvm::DebugfsRoot,
}

impl kernel::Module for KvmRtdp {
    fn init(module: &'static ThisModule) -> Result<Self> {
        kvm::direct_map::init()?;
        BIND_NEW_VMS.store(module_parameters::bind_new_vms.value(), Ordering::Relaxed);
        let debugfs = kvm::DebugfsRoot::new(&BIND_NEW_VMS)?;
        let provider = kvm::ProviderRegistration::new(entries::ops(module, c"kvm_rtdp"))?;
        pr_info!(
            "registered; new VMs {}\n",
            if bind_new_vms() {
                "bind to kvm_rtdp"
            } else {
                "stay on the C TDP MMU"
            }
        );
        Ok(KvmRtdp {
            _provider: provider,
            _debugfs: debugfs,
        })
    }
}

impl Drop for KvmRtdp {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
