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
//! block is in those two); the logic modules, each declared below with
//! `#[forbid(unsafe_code)]` (`scripts/unsafe-check.sh` fails the build check
//! for a module declared without it), are written in those types; the pure logic lives in `rust/core/src/`, one
//! file per concept, compiled both here and into the host crate `rtdp-core`
//! for `cargo test`.

use core::sync::atomic::{AtomicBool, Ordering};

use kernel::prelude::*;

#[path = "core/src/dirty_log.rs"]
#[forbid(unsafe_code)]
pub mod dirty_log;
#[path = "core/src/freeze.rs"]
#[forbid(unsafe_code)]
pub mod freeze;
#[path = "core/src/invalidations.rs"]
#[forbid(unsafe_code)]
pub mod invalidations;
#[path = "core/src/iter.rs"]
#[forbid(unsafe_code)]
pub mod iter;
#[path = "core/src/level.rs"]
#[forbid(unsafe_code)]
pub mod level;
#[path = "core/src/mirror.rs"]
#[forbid(unsafe_code)]
pub mod mirror;
#[path = "core/src/mmio_gen.rs"]
#[forbid(unsafe_code)]
pub mod mmio_gen;
#[path = "core/src/reclaim.rs"]
#[forbid(unsafe_code)]
pub mod reclaim;
#[path = "core/src/spte.rs"]
#[forbid(unsafe_code)]
pub mod spte;
#[path = "core/src/stats.rs"]
#[forbid(unsafe_code)]
pub mod stats;

#[forbid(unsafe_code)]
mod age;
#[forbid(unsafe_code)]
mod changes;
#[cfg(rtdp_compile_fail)]
#[forbid(unsafe_code)]
mod compile_fail;
#[forbid(unsafe_code)]
mod dirty;
mod entries;
#[forbid(unsafe_code)]
mod fault;
#[forbid(unsafe_code)]
mod huge_pages;
mod kvm;
#[forbid(unsafe_code)]
mod lockless;
#[forbid(unsafe_code)]
mod mmio;
#[forbid(unsafe_code)]
mod pages;
#[forbid(unsafe_code)]
mod retry;
#[forbid(unsafe_code)]
mod roots;
#[forbid(unsafe_code)]
mod tests;
#[forbid(unsafe_code)]
mod vm;
#[forbid(unsafe_code)]
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
