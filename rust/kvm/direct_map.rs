// SPDX-License-Identifier: GPL-2.0

//! The direct map and the memory map, read without a call into C.
//!
//! An SPTE names the table below it by physical address; the walk reads
//! the table through the kernel's direct map, and a table's header
//! (`struct kvm_mmu_page`) is found in `page_private()` of the table's
//! `struct page`. The C TDP MMU gets both from inline functions (`__va()`,
//! `virt_to_page()`); Rust reached them through out-of-line helpers, which
//! cost 80 guest instructions per fault (`make profile P=demand_paging`,
//! `rust_helper_virt_to_page`, `_page_private`, `_phys_to_virt`).
//!
//! On x86-64 both are one addition: the direct map is linear from
//! `PAGE_OFFSET`, and with `CONFIG_SPARSEMEM_VMEMMAP` the memory map is one
//! virtually contiguous array of `struct page` indexed by pfn. Both bases
//! are fixed at boot (KASLR chooses them before any module loads). This
//! module learns them once from the helpers, at module load, and checks
//! them against the helpers on a page of its own before kvm_rtdp
//! registers; loading fails with `EINVAL` if they disagree. Kernels without
//! a virtual memory map, and `CONFIG_DEBUG_VIRTUAL` kernels (whose
//! `__pa()` checks its argument), keep calling the helpers.

use kernel::bindings;
use kernel::prelude::*;

use crate::spte::Spte;

#[cfg(all(CONFIG_SPARSEMEM_VMEMMAP, not(CONFIG_DEBUG_VIRTUAL)))]
mod imp {
    use core::sync::atomic::{AtomicUsize, Ordering};
    use kernel::bindings;
    use kernel::prelude::*;

    const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;

    /// `PAGE_OFFSET`: the virtual address of physical address 0.
    ///
    /// # Invariants
    ///
    /// Set by [`init`] before the provider registers, so before any VM
    /// can reach the functions below; never changed after.
    static VIRT_BASE: AtomicUsize = AtomicUsize::new(0);
    /// `vmemmap`: the address of the `struct page` of pfn 0 (same
    /// invariant as [`VIRT_BASE`]).
    static MEMMAP: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn init() -> Result {
        // SAFETY: computes an address; nothing is dereferenced.
        let virt0 = unsafe { bindings::phys_to_virt(0) } as usize;
        // SAFETY: as above: `virt_to_page()` of a direct-map address is
        // arithmetic with SPARSEMEM_VMEMMAP, whether or not pfn 0 is RAM.
        let page0 = unsafe { bindings::virt_to_page(virt0 as *const _) } as usize;
        // INVARIANT: stored before the caller registers the provider; the
        // registration publishes them to every VM (kvm.ko takes a lock).
        VIRT_BASE.store(virt0, Ordering::Relaxed);
        MEMMAP.store(page0, Ordering::Relaxed);
        Ok(())
    }

    #[inline]
    pub(super) fn phys_to_virt(phys: u64) -> usize {
        VIRT_BASE
            .load(Ordering::Relaxed)
            .wrapping_add(phys as usize)
    }

    #[inline]
    pub(super) fn virt_to_phys(virt: usize) -> u64 {
        virt.wrapping_sub(VIRT_BASE.load(Ordering::Relaxed)) as u64
    }

    #[inline]
    pub(super) fn virt_to_page(virt: usize) -> *mut bindings::page {
        let pfn = virt_to_phys(virt) >> PAGE_SHIFT;
        (MEMMAP.load(Ordering::Relaxed) as *mut bindings::page).wrapping_add(pfn as usize)
    }
}

#[cfg(not(all(CONFIG_SPARSEMEM_VMEMMAP, not(CONFIG_DEBUG_VIRTUAL))))]
mod imp {
    use kernel::bindings;
    use kernel::prelude::*;

    pub(super) fn init() -> Result {
        Ok(())
    }

    #[inline]
    pub(super) fn phys_to_virt(phys: u64) -> usize {
        // SAFETY: computes (and, with DEBUG_VIRTUAL, checks) an address.
        unsafe { bindings::phys_to_virt(phys) as usize }
    }

    #[inline]
    pub(super) fn virt_to_phys(virt: usize) -> u64 {
        // SAFETY: as above.
        unsafe { bindings::virt_to_phys(virt as *mut _) }
    }

    #[inline]
    pub(super) fn virt_to_page(virt: usize) -> *mut bindings::page {
        // SAFETY: as above.
        unsafe { bindings::virt_to_page(virt as *const _) }
    }
}

/// Learn the bases, then check them against the C helpers on memory
/// allocated for the purpose (kmalloc memory is in the direct map): its
/// physical address and its `struct page` must agree both ways.
pub(crate) fn init() -> Result {
    phys_mask::init()?;
    imp::init()?;
    let probe = KBox::new(0u64, GFP_KERNEL)?;
    let virt = &raw const *probe as usize;
    // SAFETY: these only compute addresses of memory we own.
    let (phys, page) = unsafe {
        (
            bindings::virt_to_phys(virt as *mut _),
            bindings::virt_to_page(virt as *const _),
        )
    };
    if imp::phys_to_virt(phys) != virt
        || imp::virt_to_phys(virt) != phys
        || imp::virt_to_page(virt) != page
    {
        pr_err!(
            "direct map: {:#x} (phys {:#x}, page {:p}) disagrees with the bases learned at load\n",
            virt,
            phys,
            page
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// The kernel's `__PHYSICAL_MASK` (`SPTE_BASE_ADDR_MASK` is it without
/// the page offset): a variable only on kernels that may encrypt memory
/// (`CONFIG_DYNAMIC_PHYSICAL_MASK`), a constant otherwise, which the walk
/// then uses without a load.
#[cfg(CONFIG_DYNAMIC_PHYSICAL_MASK)]
mod phys_mask {
    use core::sync::atomic::{AtomicU64, Ordering};
    use kernel::bindings;
    use kernel::prelude::*;

    /// # Invariants
    ///
    /// Set by [`init`] before the provider registers, never changed after.
    static PHYS_MASK: AtomicU64 = AtomicU64::new(0);

    pub(super) fn init() -> Result {
        // SAFETY: reads a value fixed at boot.
        let mask = unsafe { bindings::physical_address_mask() };
        // INVARIANT: stored before the caller registers the provider.
        PHYS_MASK.store(mask, Ordering::Relaxed);
        Ok(())
    }

    #[inline]
    pub(super) fn get() -> u64 {
        PHYS_MASK.load(Ordering::Relaxed)
    }
}

#[cfg(not(CONFIG_DYNAMIC_PHYSICAL_MASK))]
mod phys_mask {
    use kernel::bindings;
    use kernel::prelude::*;

    /// `__PHYSICAL_MASK` of page_types.h without memory encryption.
    const MASK: u64 = (1 << 52) - 1;

    /// The constant must be the kernel's: checked once, at load.
    pub(super) fn init() -> Result {
        // SAFETY: reads a value fixed at build time.
        let mask = unsafe { bindings::physical_address_mask() };
        if mask != MASK {
            pr_err!(
                "__PHYSICAL_MASK is {:#x}, kvm_rtdp expects {:#x}\n",
                mask,
                MASK
            );
            return Err(EINVAL);
        }
        Ok(())
    }

    #[inline]
    pub(super) fn get() -> u64 {
        MASK
    }
}

/// The physical address of the table that the present non-leaf `spte`
/// links (`spte_to_child_pt()`): without SME's C-bit, which the entries
/// of an encrypting host carry above the address.
#[inline]
pub(super) fn table_address(spte: Spte) -> u64 {
    spte.table_phys(phys_mask::get())
}

/// The direct-map address of physical address `phys`.
#[inline]
pub(super) fn phys_to_virt(phys: u64) -> *mut u64 {
    imp::phys_to_virt(phys) as *mut u64
}

/// The physical address of the direct-map address `virt`.
#[inline]
pub(super) fn virt_to_phys(virt: *const u64) -> u64 {
    imp::virt_to_phys(virt as usize)
}

/// The `struct page` of the direct-map address `virt`.
#[inline]
pub(super) fn virt_to_page(virt: *const u64) -> *mut bindings::page {
    imp::virt_to_page(virt as usize)
}
