// SPDX-License-Identifier: GPL-2.0

//! A vCPU, `struct kvm_vcpu`: its MMU's root and role, its memory caches.

use core::ptr::NonNull;

use kernel::bindings;

use super::{Fault, Kvm, NewSp, RootRef, Sp, Sptep, INVALID_PAGE};
use crate::spte::Spte;

/// A vCPU, `struct kvm_vcpu`, whose MMU code the current task runs.
///
/// # Invariants
///
/// For the lifetime of a `&Vcpu`, the current task runs the vCPU's MMU
/// code (it holds `vcpu->mutex`, in `KVM_RUN` or a vCPU ioctl): its MMU
/// roles and roots change only in this task, and the roots it references
/// stay alive. `&Vcpu` is not `Send` (the wrapped C structure holds raw
/// pointers), so it stays with that task.
#[repr(transparent)]
pub(crate) struct Vcpu(kernel::types::Opaque<bindings::kvm_vcpu>);

impl Vcpu {
    /// # Safety
    ///
    /// `ptr` is a vCPU whose MMU code the current task runs for all of
    /// `'a`: kvm.ko calls the vCPU entries (`alloc_root`, `map`, the
    /// lockless walks, `check_mmio_spte`) from the vCPU's own thread.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::kvm_vcpu) -> &'a Self {
        // SAFETY: a transparent wrapper, valid for `'a` by the caller's
        // guarantee.
        // INVARIANT: by the caller's guarantee.
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(crate) fn raw(&self) -> *mut bindings::kvm_vcpu {
        self.0.get()
    }
}

impl Vcpu {
    /// The vCPU's index in its VM (`vcpu_idx`), fixed at creation.
    #[inline]
    pub(crate) fn index(&self) -> usize {
        // SAFETY: set before the vCPU is visible, never changed.
        unsafe { (*self.raw()).vcpu_idx as usize }
    }

    fn mmu(&self) -> *mut bindings::kvm_mmu {
        // SAFETY: a vCPU always has its current MMU.
        unsafe { (*self.raw()).arch.mmu }
    }

    pub(crate) fn kvm(&self) -> &Kvm {
        // SAFETY: a vCPU's VM outlives it.
        unsafe { Kvm::from_raw((*self.raw()).kvm) }
    }

    /// The role of the roots this vCPU uses.
    pub(crate) fn root_role(&self) -> RootRole {
        // SAFETY: the current MMU's role, stable while the vCPU runs MMU
        // code.
        RootRole(unsafe { (*self.mmu()).root_role })
    }

    /// The level of the vCPU's TDP roots.
    pub(crate) fn root_level(&self) -> i32 {
        // SAFETY: as in `root_role`.
        unsafe { (*self.mmu()).root_role.__bindgen_anon_1.level() as i32 }
    }

    /// The vCPU's current (direct) root, alive for as long as `&self` (the
    /// vCPU's reference holds it while this task runs the vCPU's MMU code:
    /// the type invariant).
    pub(crate) fn root(&self) -> Option<Sp<'_>> {
        // SAFETY: `root.hpa` is the physical address of a TDP MMU root's
        // table, held by the vCPU's reference, or invalid.
        let hpa = unsafe { (*self.mmu()).root.hpa };
        if hpa == INVALID_PAGE {
            return None;
        }
        let table = NonNull::new(super::direct_map::phys_to_virt(hpa))?;
        // SAFETY: the table of a root the vCPU holds a reference to, which
        // only this task could drop (type invariant).
        Some(unsafe { Sp::of_table(table) })
    }

    /// The vCPU's mirror root (TDX), held as [`Vcpu::root`] is.
    pub(crate) fn mirror_root(&self) -> Option<Sp<'_>> {
        // SAFETY: as in `root`, for `mirror_root_hpa`.
        let hpa = unsafe { (*self.mmu()).mirror_root_hpa };
        if hpa == INVALID_PAGE {
            return None;
        }
        let table = NonNull::new(super::direct_map::phys_to_virt(hpa))?;
        // SAFETY: as in `root`.
        Some(unsafe { Sp::of_table(table) })
    }

    /// The root `fault` is handled in: the mirror root for a TDX VM's
    /// private address (its shared bit clear), else the direct root
    /// (`tdp_mmu_get_root_for_fault()`).
    pub(crate) fn root_for_fault(&self, fault: &super::Fault) -> Option<Sp<'_>> {
        let direct_bits = self.kvm().gfn_direct_bits() << 12;
        if direct_bits != 0 && fault.addr() & direct_bits == 0 {
            self.mirror_root()
        } else {
            self.root()
        }
    }

    /// Give `sp`, a new table of a mirror root, the page its external twin
    /// uses, from the vCPU's cache (topped up by kvm.ko for TDX VMs).
    pub(crate) fn alloc_external_spt(&self, sp: &mut NewSp) {
        // SAFETY: the vCPU's caches were topped up before the fault; `sp` is
        // ours and not linked yet.
        unsafe { bindings::kvm_tdp_mmu_provider_alloc_external_spt(self.raw(), sp.raw()) };
    }

    /// Make `root` the vCPU's root (`mirror`: its mirror root); the vCPU
    /// holds the reference from now on, and kvm.ko puts it (`put_root`).
    pub(crate) fn set_root(&self, root: RootRef<'_>, mirror: bool) {
        let hpa = root.sp().table().phys();
        let _ = root.into_raw();
        // SAFETY: the vCPU's own MMU state, written by the vCPU thread.
        unsafe {
            if mirror {
                (*self.mmu()).mirror_root_hpa = hpa;
            } else {
                (*self.mmu()).root.hpa = hpa;
                (*self.mmu()).root.pgd = 0;
            }
        }
    }

    /// A page-table page from the vCPU's memory caches, for the SPTE
    /// `parent` (`None` for a root) mapping `gfn`, with `role`.
    pub(crate) fn alloc_sp(&self, parent: Option<Sptep<'_>>, gfn: u64, role: RootRole) -> NewSp {
        let ptep = parent.map_or(core::ptr::null_mut(), Sptep::raw);
        // SAFETY: the caches were topped up before the fault or root load;
        // the helper initializes the header for `ptep`.
        let sp = unsafe { bindings::kvm_tdp_mmu_provider_alloc_sp(self.raw(), ptep, gfn, role.0) };
        // SAFETY: a page from the vCPU's caches, never NULL (the caches
        // were topped up), seen by nobody else yet.
        unsafe { NewSp::from_raw(NonNull::new_unchecked(sp)) }
    }

    /// Whether `spte` denies the access of `fault`.
    pub(crate) fn permission_fault(&self, spte: Spte, fault: &Fault) -> bool {
        // SAFETY: a valid vCPU and fault.
        unsafe {
            bindings::kvm_tdp_mmu_provider_spte_permission_fault(self.raw(), spte.0, fault.raw())
        }
    }

    /// The memslot generation this vCPU's MMIO SPTEs are made and checked
    /// under.
    pub(crate) fn memslots_generation(&self) -> u64 {
        // SAFETY: a valid vCPU, in a fault (kvm->srcu held).
        unsafe { bindings::kvm_tdp_mmu_provider_memslots_generation(self.raw()) }
    }

    /// Count an MMIO SPTE created for this vCPU's fault.
    pub(crate) fn count_mmio_spte_created(&self) {
        // SAFETY: the vCPU's own statistics, written by the vCPU thread.
        unsafe { (*self.raw()).stat.pf_mmio_spte_created += 1 };
    }
}

/// A page-table page role (`union kvm_mmu_page_role`).
#[derive(Clone, Copy)]
pub(crate) struct RootRole(pub(super) bindings::kvm_mmu_page_role);

impl RootRole {
    pub(crate) fn word(self) -> u32 {
        // SAFETY: the word covers the whole union.
        unsafe { self.0.word }
    }

    pub(crate) fn access(self) -> u32 {
        // SAFETY: the bitfield view of the union.
        unsafe { self.0.__bindgen_anon_1.access() }
    }

    /// The role of a root for mirrored (TDX) memory.
    pub(crate) fn with_mirror(mut self) -> Self {
        // SAFETY: the bitfield view of the union.
        unsafe { self.0.__bindgen_anon_1.set_is_mirror(1) };
        self
    }

    /// The role of the pages one level below a page with this role.
    pub(crate) fn child(mut self) -> Self {
        // SAFETY: the bitfield view of the union.
        unsafe {
            let level = self.0.__bindgen_anon_1.level();
            self.0.__bindgen_anon_1.set_level(level - 1);
        }
        self
    }

    /// The role of the page `sp`.
    pub(crate) fn of(sp: Sp<'_>) -> Self {
        RootRole(sp.role())
    }
}
