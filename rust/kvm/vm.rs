// SPDX-License-Identifier: GPL-2.0

//! A VM, `struct kvm`: the fields and kvm.ko functions the TDP MMU uses.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI64, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::raw_rwlock::RawRwLock;

use super::vm_state::state_slot;
use super::{MmuLocked, Sp, VmState};
use crate::level::Level;
use crate::mmio_gen::MmioMasks;
use crate::spte::{Masks, Spte};

/// A VM bound to kvm_rtdp, `struct kvm`, with its [`VmState`].
///
/// # Invariants
///
/// A `&Kvm` refers to a VM bound to kvm_rtdp whose `init` entry stored its
/// state and whose `uninit` entry has not taken it back, for all of the
/// reference's lifetime: [`Kvm::state`] needs no check. Only
/// [`NewVm::bind`] and the `unsafe` [`Kvm::from_raw`] make one.
#[repr(transparent)]
pub(crate) struct Kvm(kernel::types::Opaque<bindings::kvm>);

impl Kvm {
    /// # Safety
    ///
    /// `ptr` is a VM bound to kvm_rtdp, between the return of its `init`
    /// entry (which stored its state) and the start of its `uninit` entry,
    /// for all of `'a`: kvm.ko calls the other entries only in that span,
    /// and a vCPU lives only within it.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::kvm) -> &'a Self {
        // SAFETY: a transparent wrapper, valid for `'a` by the caller's
        // guarantee.
        // INVARIANT: the state is set for `'a` by the caller's guarantee.
        unsafe { &*ptr.cast::<Self>() }
    }

    pub(crate) fn raw(&self) -> *mut bindings::kvm {
        self.0.get()
    }
}

/// A VM whose `init` entry runs: not bound yet, without state, so it has
/// none of [`Kvm`]'s methods; [`NewVm::bind`] turns it into a [`Kvm`].
///
/// # Invariants
///
/// `kvm` is a valid VM whose `init` entry is running in the current task;
/// nothing has stored its state.
pub(crate) struct NewVm<'a> {
    kvm: NonNull<bindings::kvm>,
    _life: PhantomData<&'a bindings::kvm>,
}

impl<'a> NewVm<'a> {
    /// # Safety
    ///
    /// Called from the `init` entry of `ptr`, a valid VM for `'a`, once.
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::kvm>) -> Self {
        // INVARIANT: by the caller's guarantee.
        NewVm {
            kvm: ptr,
            _life: PhantomData,
        }
    }

    pub(super) fn raw(&self) -> *mut bindings::kvm {
        self.kvm.as_ptr()
    }

    /// Whether the VM mirrors its private memory to an external page table
    /// of the vendor (TDX).
    pub(crate) fn has_mirrored_tdp(&self) -> bool {
        is_tdx(self.raw())
    }

    /// The mode-dependent SPTE bits, as kvm.ko's vendor module set them
    /// before any VM existed; read once per VM (`VmState::masks`).
    pub(crate) fn masks(&self) -> Masks {
        vendor_masks()
    }

    /// Store `state`: the VM is bound, and its [`Kvm`] handle usable, from
    /// now until its `uninit` entry.
    pub(crate) fn bind(self, state: KBox<VmState>) -> &'a Kvm {
        // SAFETY: the `init` entry, once (type invariant): nothing else
        // reads or writes the slot yet.
        unsafe { *state_slot(self.raw()) = KBox::into_raw(state).cast() };
        // SAFETY: the state is stored; kvm.ko calls the other entries only
        // after `init` returns, and `uninit` last.
        unsafe { Kvm::from_raw(self.raw()) }
    }
}

/// Whether the VM `kvm` is a TDX VM.
fn is_tdx(kvm: *mut bindings::kvm) -> bool {
    // SAFETY: a valid VM (both callers' invariant); the type is set before
    // the MMU is initialized and never changes.
    u32::from(unsafe { (*kvm).arch.vm_type }) == bindings::KVM_X86_TDX_VM
}

/// The mode-dependent SPTE bits of the loaded vendor module.
fn vendor_masks() -> Masks {
    // SAFETY: read-mostly data that kvm.ko sets at vendor module load,
    // before any VM exists.
    unsafe {
        Masks {
            accessed: bindings::shadow_accessed_mask,
            dirty: bindings::shadow_dirty_mask,
            mmu_writable: bindings::shadow_mmu_writable_mask,
            host_writable: bindings::shadow_host_writable_mask,
            acc_track: bindings::shadow_acc_track_mask,
        }
    }
}

/// No vCPU of a VM enters the guest again: the VM is being destroyed, or
/// its userspace VMM has exited (the MMU notifier's release), so that
/// whatever a zap removes needs no TLB flush.
///
/// # Invariants
///
/// While the value lives, no vCPU of `kvm` runs the guest again.
pub(crate) struct NoGuestEntry<'a> {
    kvm: &'a Kvm,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> NoGuestEntry<'a> {
    /// Stand for kvm.ko's guarantee that no vCPU of `kvm` enters the guest
    /// again.
    ///
    /// # Safety
    ///
    /// No vCPU of `kvm` runs the guest from now on: kvm.ko calls
    /// `kvm_tdp_mmu_zap_all()` only from `kvm_arch_flush_shadow_all()`,
    /// when the VM is destroyed or its mm is torn down, after which
    /// `KVM_RUN` is unreachable.
    pub(crate) unsafe fn assume(kvm: &'a Kvm) -> Self {
        // INVARIANT: by the caller's guarantee.
        NoGuestEntry {
            kvm,
            _not_send: PhantomData,
        }
    }

    /// The VM the guarantee is for.
    pub(crate) fn kvm(&self) -> &'a Kvm {
        self.kvm
    }
}

impl Kvm {
    pub(super) fn arch(&self) -> *mut bindings::kvm_arch {
        // SAFETY: `self` is a valid `struct kvm`; this only computes a field
        // address.
        unsafe { &raw mut (*self.raw()).arch }
    }

    pub(super) fn mmu_lock(&self) -> &RawRwLock {
        // SAFETY: `mmu_lock` is initialized at VM creation and lives as long
        // as the VM.
        unsafe { RawRwLock::from_raw(&raw mut (*self.raw()).mmu_lock) }
    }

    /// How this VM's MMIO SPTEs are laid out.
    pub(crate) fn mmio_masks(&self) -> MmioMasks {
        // SAFETY: the per-VM MMIO value is set at VM creation (and by SEV-ES
        // setup, under kvm->lock, before vCPUs run); the global masks are
        // fixed while the vendor module is loaded, which a VM pins.
        unsafe {
            MmioMasks {
                value: core::ptr::read_volatile(&raw const (*self.arch()).shadow_mmio_value),
                access: bindings::shadow_mmio_access_mask,
                nonpresent_or_rsvd: bindings::shadow_nonpresent_or_rsvd_mask,
                nonpresent_or_rsvd_lower_gfn: bindings::shadow_nonpresent_or_rsvd_lower_gfn_mask,
            }
        }
    }

    /// kvm.ko's MMU invalidation sequence (`mmu_invalidate_seq`), read once.
    pub(crate) fn invalidate_seq(&self) -> u64 {
        // SAFETY: a field of a valid VM; writers hold mmu_lock for write,
        // and a racy read is what the lockless pre-check wants.
        unsafe { core::ptr::read_volatile(&raw const (*self.raw()).mmu_invalidate_seq) as u64 }
    }

    /// Whether kvm.ko's single widened invalidation range holds `gfn`;
    /// `_lock` keeps the two bounds from changing between the reads (they
    /// change under the write lock only).
    pub(crate) fn invalidate_union_contains(&self, _lock: &MmuLocked<'_>, gfn: u64) -> bool {
        kernel::warn_on!(!core::ptr::eq(_lock.kvm(), self));
        // SAFETY: fields of a valid VM; `_lock` is this VM's mmu_lock held,
        // so no writer changes them meanwhile.
        let (start, end) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*self.raw()).mmu_invalidate_range_start),
                core::ptr::read_volatile(&raw const (*self.raw()).mmu_invalidate_range_end),
            )
        };
        start <= gfn && gfn < end
    }

    /// The gfn bits that select the shared half of a TDX VM's guest
    /// physical space, where its direct root maps; 0 for other VMs
    /// (`kvm_gfn_direct_bits()`).
    #[inline]
    pub(crate) fn gfn_direct_bits(&self) -> u64 {
        // SAFETY: set before the MMU is initialized and never changed.
        unsafe { (*self.arch()).gfn_direct_bits }
    }

    /// The gfn bits a walk of `root` ORs into the gfns it covers: the
    /// shared half for a TDX VM's direct root (`kvm_gfn_root_bits()`).
    #[inline]
    pub(crate) fn gfn_root_bits(&self, root: Sp<'_>) -> u64 {
        if root.is_mirror() {
            0
        } else {
            self.gfn_direct_bits()
        }
    }

    /// Whether the VM mirrors its private memory into an external page
    /// table (TDX).
    pub(crate) fn has_mirrored_tdp(&self) -> bool {
        is_tdx(self.raw())
    }

    /// Mark the VM bugged (`KVM_BUG_ON()`): its vCPUs stop running and
    /// its ioctls fail from now on.
    pub(crate) fn bug(&self) {
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_tdp_mmu_provider_vm_bugged(self.raw()) };
    }

    /// Flush every vCPU's TLB for this VM; counted in the VM's statistics.
    pub(crate) fn flush_remote_tlbs(&self) {
        self.state().count(crate::stats::Counter::TlbFlushes);
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_flush_remote_tlbs(self.raw()) };
    }

    /// Flush the translations of the `level`-sized region holding `gfn`.
    pub(crate) fn flush_remote_tlbs_gfn(&self, gfn: u64, level: Level) {
        self.flush_remote_tlbs_range(level.round_gfn(gfn), level.pages());
    }

    /// Flush the translations of `[gfn, gfn + pages)`.
    pub(crate) fn flush_remote_tlbs_range(&self, gfn: u64, pages: u64) {
        self.state().count(crate::stats::Counter::TlbFlushes);
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_flush_remote_tlbs_range(self.raw(), gfn, pages) };
    }

    /// Account `count` more (or fewer) leaf mappings at `level` in the VM's
    /// page statistics.
    ///
    /// The same atomic add as `kvm_update_page_stats()`, made here: the
    /// exported function cost a call per leaf installed or removed.
    #[inline]
    pub(crate) fn update_page_stats(&self, level: Level, count: i32) {
        fn len<T, const N: usize>(_: *mut [T; N]) -> usize {
            N
        }
        // SAFETY: a field of a valid VM (no access, only its address).
        let pages = unsafe { &raw mut (*self.raw()).stat.__bindgen_anon_1.pages };
        // `pages_4k`, `_2m` and `_1g`: leaves exist at those levels only.
        let index = level.index();
        if kernel::warn_on!(index >= len(pages)) {
            return;
        }
        // SAFETY: `index` is in bounds of the array.
        let counter = unsafe { pages.cast::<bindings::atomic64_t>().add(index) };
        // SAFETY: an `atomic64_t` is an aligned `s64` that kvm.ko, too,
        // only changes atomically; it lives as long as the VM.
        let counter = unsafe { AtomicI64::from_ptr(&raw mut (*counter).counter) };
        counter.fetch_add(count.into(), Ordering::Relaxed);
    }

    /// Whether dirty logging in the tree of `root` must write-protect
    /// rather than clear Dirty bits (`tdp_mmu_need_write_protect()`): no
    /// A/D bits, or the CPU's dirty log (PML) would record L2 addresses
    /// for a nested guest's tree.
    pub(crate) fn need_write_protect(&self, root: Sp<'_>) -> bool {
        // SAFETY: reads KVM's configuration.
        let ad_enabled = unsafe { bindings::kvm_tdp_mmu_provider_ad_enabled() };
        // SAFETY: set at VM creation.
        let pml = unsafe { (*self.arch()).cpu_dirty_log_size != 0 };
        (pml && root.guest_mode()) || !ad_enabled
    }

    /// Whether `spte` is an MMIO SPTE of this VM.
    pub(crate) fn is_mmio_spte(&self, spte: Spte) -> bool {
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_tdp_mmu_provider_is_mmio_spte(self.raw(), spte.0) }
    }
}

/// Whether the current task should give up the CPU (`need_resched()`).
pub(crate) fn need_resched() -> bool {
    // SAFETY: reads the current task's flag.
    unsafe { bindings::need_resched() }
}
