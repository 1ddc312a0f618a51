// SPDX-License-Identifier: GPL-2.0

//! The boundary with kvm.ko: every raw binding and every `unsafe` block of
//! the module lives here.
//!
//! kvm.ko (with `patches/`) routes the TDP MMU entry points of each VM bound
//! to a provider through a `struct kvm_tdp_mmu_ops`
//! (`arch/x86/include/asm/kvm_tdp_mmu_provider.h`). The Rust bindings of the
//! series give this module the layouts of `struct kvm`, `struct kvm_vcpu`,
//! `struct kvm_mmu_page` and `struct kvm_page_fault`; the rest of the module
//! sees only the safe types below.
//!
//! # Handles to page tables
//!
//! [`Sp`], [`Table`] and [`Sptep`] are copyable handles to a page-table
//! page, its header and one of its SPTEs. They carry no lifetime: what keeps
//! the page alive is one of the TDP MMU's own rules, stated where a handle is
//! made and relied on by the modules that use it:
//!
//! - a root lives while a reference to it is held (`tdp_mmu_root_count`);
//! - a table reached through a root lives until the end of the RCU read-side
//!   section it was reached in ([`Walk`] owns that section and re-walks after
//!   leaving it);
//! - a table unlinked from the tree belongs to the thread that unlinked it,
//!   which frees it after a grace period ([`Sp::free_after_grace_period`]).

use core::ffi::{c_int, CStr};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering};

use kernel::debugfs::{Dir, File};

use kernel::sync::raw_rwlock::{RawRwLock, RawRwLockReadGuard, RawRwLockWriteGuard};
use kernel::{bindings, error::to_result, prelude::*, sync::rcu, types::Opaque};

use crate::iter::{self, TdpIter};
use crate::level::{Level, SPTE_ENT_PER_PAGE, SPTE_LEVEL_BITS};
use crate::mmio_gen::MmioMasks;
use crate::reclaim;
use crate::spte::{Masks, Spte, BASE_ADDR_MASK};
use crate::vm::VmState;

/// Entries of `struct kvm_tdp_mmu_ops` after `bind` (`KVM_TDP_MMU_NR_ENTRIES`):
/// `init`, `uninit` and one per `kvm_tdp_mmu_*()` entry point.
pub(crate) const TDP_MMU_ENTRIES: usize = bindings::KVM_TDP_MMU_NR_ENTRIES as usize;
/// Hooks into the rest of KVM's MMU after the entries (`KVM_TDP_MMU_NR_HOOKS`).
pub(crate) const TDP_MMU_HOOKS: usize = bindings::KVM_TDP_MMU_NR_HOOKS as usize;

/// Result of [`crate::fault::map`], as `kvm_mmu_do_page_fault()` reads it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PfResult {
    Retry,
    Emulate,
    WriteProtected,
    Fixed,
    Spurious,
}

impl PfResult {
    fn to_c(self) -> c_int {
        (match self {
            PfResult::Retry => bindings::RET_PF_RETRY,
            PfResult::Emulate => bindings::RET_PF_EMULATE,
            PfResult::WriteProtected => bindings::RET_PF_WRITE_PROTECTED,
            PfResult::Fixed => bindings::RET_PF_FIXED,
            PfResult::Spurious => bindings::RET_PF_SPURIOUS,
        }) as c_int
    }
}

/// Which roots an operation covers (`enum kvm_tdp_mmu_root_types`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RootTypes(u32);

impl RootTypes {
    pub(crate) const INVALID: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_INVALID_ROOTS);
    pub(crate) const DIRECT: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_DIRECT_ROOTS);
    pub(crate) const MIRROR: RootTypes =
        RootTypes(bindings::kvm_tdp_mmu_root_types_KVM_MIRROR_ROOTS);
    pub(crate) const VALID: RootTypes = RootTypes(Self::DIRECT.0 | Self::MIRROR.0);
    pub(crate) const ALL: RootTypes = RootTypes(Self::VALID.0 | Self::INVALID.0);

    pub(crate) const fn contains(self, other: RootTypes) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) const fn union(self, other: RootTypes) -> RootTypes {
        RootTypes(self.0 | other.0)
    }

    pub(crate) const fn without(self, other: RootTypes) -> RootTypes {
        RootTypes(self.0 & !other.0)
    }
}

/// How the caller holds `mmu_lock`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MmuLock {
    /// Held for read: SPTEs change only by atomic operations, concurrently
    /// with other readers.
    Shared,
    /// Held for write.
    Exclusive,
}

/// `INVALID_PAGE`: no root.
const INVALID_PAGE: u64 = !0;

/// `refcount_read()`.
///
/// # Safety
///
/// `r` points to a live `refcount_t`.
unsafe fn read_refcount(r: *const bindings::refcount_t) -> i32 {
    // SAFETY: an aligned atomic_t of a live refcount, read once like
    // atomic_read() does.
    unsafe { core::ptr::read_volatile(&raw const (*r).refs.counter) }
}

/// A transparent wrapper of a C structure that kvm.ko passes by pointer,
/// with `from_raw` (unsafe: the pointee must outlive the reference) and
/// `raw`.
macro_rules! c_wrapper {
    ($(#[$meta:meta])* $name:ident, $c:ty) => {
        $(#[$meta])*
        #[repr(transparent)]
        pub(crate) struct $name(Opaque<$c>);

        impl $name {
            /// # Safety
            ///
            /// `ptr` points to a valid object that outlives `'a`.
            unsafe fn from_raw<'a>(ptr: *mut $c) -> &'a Self {
                // SAFETY: a transparent wrapper, valid for `'a` by the
                // caller's guarantee.
                unsafe { &*ptr.cast::<Self>() }
            }

            fn raw(&self) -> *mut $c {
                self.0.get()
            }
        }
    };
}

c_wrapper!(
    /// A VM, `struct kvm`.
    Kvm,
    bindings::kvm
);
c_wrapper!(
    /// A vCPU, `struct kvm_vcpu`.
    Vcpu,
    bindings::kvm_vcpu
);
c_wrapper!(
    /// A page fault being handled, `struct kvm_page_fault`.
    Fault,
    bindings::kvm_page_fault
);
c_wrapper!(
    /// A gfn range of an MMU notifier or a memslot operation.
    GfnRange,
    bindings::kvm_gfn_range
);
c_wrapper!(
    /// A memslot, `struct kvm_memory_slot`.
    Memslot,
    bindings::kvm_memory_slot
);

impl Kvm {
    fn arch(&self) -> *mut bindings::kvm_arch {
        // SAFETY: `self` is a valid `struct kvm`; this only computes a field
        // address.
        unsafe { &raw mut (*self.raw()).arch }
    }

    fn mmu_lock_raw(&self) -> *mut bindings::rwlock_t {
        // SAFETY: field address of a valid VM.
        unsafe { &raw mut (*self.raw()).mmu_lock }
    }

    fn mmu_lock(&self) -> &RawRwLock {
        // SAFETY: `mmu_lock` is initialized at VM creation and lives as long
        // as the VM.
        unsafe { RawRwLock::from_raw(&raw mut (*self.raw()).mmu_lock) }
    }

    fn state_slot(&self) -> *mut *mut core::ffi::c_void {
        // SAFETY: field address of a valid VM.
        unsafe { &raw mut (*self.arch()).tdp_mmu_provider_data }
    }

    /// Give the VM its state; from the `init` entry, before any other.
    pub(crate) fn set_state(&self, state: KBox<VmState>) {
        // SAFETY: `init` runs before any other entry of the VM, alone.
        unsafe { *self.state_slot() = KBox::into_raw(state).cast() };
    }

    /// Take the VM's state back; from the `uninit` entry, after every other.
    pub(crate) fn take_state(&self) -> KBox<VmState> {
        // SAFETY: `uninit` runs after every other entry of the VM, alone;
        // the slot holds the box `set_state` stored (the invariant of
        // `crate::vm`).
        unsafe {
            let state = core::ptr::replace(self.state_slot(), core::ptr::null_mut());
            KBox::from_raw(state.cast())
        }
    }

    /// The VM's state, between `init` and `uninit`.
    #[inline]
    pub(crate) fn state(&self) -> &VmState {
        // SAFETY: entries other than `init` and `uninit` run between them,
        // while the box lives (the invariant of `crate::vm`).
        unsafe { &*(*self.state_slot()).cast::<VmState>() }
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

    /// Whether kvm.ko's single widened invalidation range holds `gfn`.
    pub(crate) fn invalidate_union_contains(&self, gfn: u64) -> bool {
        // SAFETY: fields of a valid VM, read under mmu_lock.
        let (start, end) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*self.raw()).mmu_invalidate_range_start),
                core::ptr::read_volatile(&raw const (*self.raw()).mmu_invalidate_range_end),
            )
        };
        start <= gfn && gfn < end
    }

    /// Whether the VM mirrors its private memory into an external page
    /// table (TDX).
    pub(crate) fn has_mirrored_tdp(&self) -> bool {
        // SAFETY: the type is set before the MMU is initialized and never
        // changes.
        u32::from(unsafe { (*self.arch()).vm_type }) == bindings::KVM_X86_TDX_VM
    }

    /// Flush every vCPU's TLB for this VM.
    pub(crate) fn flush_remote_tlbs(&self) {
        self.state().stats.count(crate::vm::Counter::TlbFlushes);
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_flush_remote_tlbs(self.raw()) };
    }

    /// Flush the translations of the `level`-sized region holding `gfn`.
    pub(crate) fn flush_remote_tlbs_gfn(&self, gfn: u64, level: Level) {
        self.flush_remote_tlbs_range(level.round_gfn(gfn), level.pages());
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

    /// Flush the translations of `[gfn, gfn + pages)`.
    pub(crate) fn flush_remote_tlbs_range(&self, gfn: u64, pages: u64) {
        self.state().stats.count(crate::vm::Counter::TlbFlushes);
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_flush_remote_tlbs_range(self.raw(), gfn, pages) };
    }

    /// The mode-dependent SPTE bits, as kvm.ko's vendor module set them
    /// before any VM existed; read once per VM (`VmState::masks`).
    pub(crate) fn masks(&self) -> Masks {
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

    /// Whether dirty logging in the tree of `root` must write-protect
    /// rather than clear Dirty bits (`tdp_mmu_need_write_protect()`): no
    /// A/D bits, or the CPU's dirty log (PML) would record L2 addresses
    /// for a nested guest's tree.
    pub(crate) fn need_write_protect(&self, root: Sp) -> bool {
        // SAFETY: reads KVM's configuration.
        let ad_enabled = unsafe { bindings::kvm_tdp_mmu_provider_ad_enabled() };
        // SAFETY: set at VM creation; the role bitfield of a valid page.
        let pml_for_l2 = unsafe {
            (*self.arch()).cpu_dirty_log_size != 0 && root.role().__bindgen_anon_1.guest_mode() != 0
        };
        pml_for_l2 || !ad_enabled
    }

    /// Whether `spte` is an MMIO SPTE of this VM.
    pub(crate) fn is_mmio_spte(&self, spte: Spte) -> bool {
        // SAFETY: `self` is a valid VM.
        unsafe { bindings::kvm_tdp_mmu_provider_is_mmio_spte(self.raw(), spte.0) }
    }

    /// Whether another thread waits for `mmu_lock`.
    pub(crate) fn mmu_lock_contended(&self) -> bool {
        self.mmu_lock().needbreak()
    }

    /// Warn, through lockdep, unless this task holds `mmu_lock` as `how`:
    /// `kvm_lockdep_assert_mmu_lock_held()` of the C TDP MMU. Compiles to
    /// nothing without `CONFIG_LOCKDEP`.
    #[inline]
    pub(crate) fn assert_mmu_lock(&self, how: MmuLock) {
        match how {
            MmuLock::Shared => self.mmu_lock().assert_held_read(),
            MmuLock::Exclusive => self.mmu_lock().assert_held_write(),
        }
    }

    /// Warn, through lockdep, unless this task holds `mmu_lock` for read
    /// or for write.
    #[inline]
    pub(crate) fn assert_mmu_lock_held(&self) {
        self.mmu_lock().assert_held();
    }

    /// Whether nobody but this task can reach the VM's roots: it has no
    /// users left (its last reference was put) or never had a vCPU (an
    /// error path of KVM_CREATE_VM). The C TDP MMU waives its lock
    /// assertion in `kvm_tdp_mmu_invalidate_roots()` for such VMs.
    fn unreachable(&self) -> bool {
        // SAFETY: `users_count` and `created_vcpus` are fields of a valid
        // VM; a racy read can only miss a waiver.
        unsafe {
            read_refcount(&raw const (*self.raw()).users_count) == 0
                || core::ptr::read_volatile(&raw const (*self.raw()).created_vcpus) == 0
        }
    }

    /// Take `mmu_lock` as `how`, for entries that kvm.ko calls without it.
    pub(crate) fn lock_mmu(&self, how: MmuLock) -> MmuLockGuard<'_> {
        match how {
            MmuLock::Shared => MmuLockGuard::Shared {
                _guard: self.mmu_lock().read(),
            },
            MmuLock::Exclusive => MmuLockGuard::Exclusive {
                _guard: self.mmu_lock().write(),
            },
        }
    }

    /// Drop and retake `mmu_lock`, held as `how`, if another thread waits
    /// for it or this one should reschedule.
    ///
    /// # Safety
    ///
    /// The caller holds `mmu_lock` as `how`, relies on nothing it protects
    /// across the call, and is outside RCU read-side sections.
    unsafe fn cond_resched_mmu_lock(&self, how: MmuLock) {
        self.assert_mmu_lock(how);
        // SAFETY: the caller's guarantees.
        unsafe {
            match how {
                MmuLock::Shared => self.mmu_lock().cond_resched_read(),
                MmuLock::Exclusive => self.mmu_lock().cond_resched_write(),
            }
        };
    }

    /// Drop `mmu_lock`, held as `how`, run `f`, which may sleep, and take
    /// the lock again.
    ///
    /// # Safety
    ///
    /// As for [`Kvm::cond_resched_mmu_lock`].
    unsafe fn with_mmu_lock_dropped<T>(&self, how: MmuLock, f: impl FnOnce() -> T) -> T {
        self.assert_mmu_lock(how);
        let lock = self.mmu_lock_raw();
        // SAFETY: the caller holds the lock as `how` and relies on nothing
        // it protects until it is taken again.
        unsafe {
            match how {
                MmuLock::Shared => bindings::read_unlock(lock),
                MmuLock::Exclusive => bindings::write_unlock(lock),
            }
        };
        let result = f();
        // SAFETY: retaken as the caller held it.
        unsafe {
            match how {
                MmuLock::Shared => bindings::read_lock(lock),
                MmuLock::Exclusive => bindings::write_lock(lock),
            }
        };
        result
    }

    /// Take `tdp_mmu_pages_lock`, which orders changes to the root list and
    /// the possible-NX-huge-page list among holders of `mmu_lock` for read.
    pub(crate) fn lock_pages(&self) -> PagesGuard<'_> {
        // SAFETY: the lock was initialized by kvm_mmu_init_tdp_mmu().
        unsafe { bindings::spin_lock(&raw mut (*self.arch()).tdp_mmu_pages_lock) };
        PagesGuard { kvm: self }
    }

    fn roots_head(&self) -> *mut bindings::list_head {
        // SAFETY: field address of a valid VM.
        unsafe { &raw mut (*self.arch()).tdp_mmu_roots }
    }

    /// The root after `prev` on the root list (the first when `prev` is
    /// `None`), as an RCU reader sees the list: `prev` must be on the list
    /// or still RCU-protected, and the result is valid until the end of the
    /// caller's read-side section unless a reference is taken.
    pub(crate) fn next_root_rcu(&self, _rcu: &rcu::Guard, prev: Option<Sp>) -> Option<Sp> {
        let head = self.roots_head();
        let link = match prev {
            // SAFETY: `prev` is a live kvm_mmu_page (see above).
            Some(sp) => unsafe { &raw mut (*sp.raw()).link },
            None => head,
        };
        // SAFETY: `link` is a list_head of the RCU-protected root list;
        // `next` is read once, as list_next_or_null_rcu() does.
        let next = unsafe { core::ptr::read_volatile(&raw const (*link).next) };
        if next == head {
            return None;
        }
        // SAFETY: every entry of `tdp_mmu_roots` is the `link` of a
        // kvm_mmu_page.
        Some(unsafe { Sp::from_link(next) })
    }

    /// Every root on the list, for a holder of `mmu_lock` for write, or of
    /// a VM nobody else can reach (see [`Kvm::unreachable`]): the list
    /// cannot change under it, and lockdep is asked to confirm that the
    /// lock is held (`for_each_tdp_mmu_root()` and
    /// `kvm_tdp_mmu_invalidate_roots()` of the C TDP MMU).
    pub(crate) fn for_each_root_exclusive(&self, f: impl FnMut(Sp)) {
        // The waiver is only read where the assertion exists: without
        // lockdep, dirty-log entries do not pay for two loads.
        if cfg!(CONFIG_LOCKDEP) && !self.unreachable() {
            self.assert_mmu_lock(MmuLock::Exclusive);
        }
        // SAFETY: the list cannot change (see above).
        unsafe { self.for_each_root_stable(f) };
    }

    /// Every root on the list.
    ///
    /// # Safety
    ///
    /// The list cannot change during the call: the caller holds
    /// `mmu_lock` for write or the pages lock, or nobody else can reach
    /// the VM.
    unsafe fn for_each_root_stable(&self, mut f: impl FnMut(Sp)) {
        let head = self.roots_head();
        // SAFETY: the list is stable (the caller's guarantee); every entry
        // is the `link` of a kvm_mmu_page.
        unsafe {
            let mut pos = (*head).next;
            while pos != head {
                let sp = Sp::from_link(pos);
                pos = (*pos).next;
                f(sp);
            }
        }
    }

    /// Whether the root list is empty.
    pub(crate) fn roots_empty(&self) -> bool {
        let head = self.roots_head();
        // SAFETY: reads the first link of a valid list.
        unsafe { core::ptr::read_volatile(&raw const (*head).next) == head }
    }
}

/// `mmu_lock`, taken by this module; released on drop.
pub(crate) enum MmuLockGuard<'a> {
    Shared { _guard: RawRwLockReadGuard<'a> },
    Exclusive { _guard: RawRwLockWriteGuard<'a> },
}

/// `tdp_mmu_pages_lock`, held.
pub(crate) struct PagesGuard<'a> {
    kvm: &'a Kvm,
}

impl PagesGuard<'_> {
    /// Every root on the list: list writers hold the pages lock, so the
    /// list cannot change under the guard.
    pub(crate) fn for_each_root(&self, f: impl FnMut(Sp)) {
        // SAFETY: the pages lock is held for the guard's life.
        unsafe { self.kvm.for_each_root_stable(f) };
    }

    /// Put `root` on the VM's root list.
    pub(crate) fn add_root(&self, root: Sp) {
        // SAFETY: the pages lock serializes list writers; `root` is a fresh
        // root not on any list.
        unsafe { bindings::list_add_rcu(&raw mut (*root.raw()).link, self.kvm.roots_head()) };
    }

    /// Take `root` off the VM's root list; RCU readers may still see it
    /// until a grace period has passed.
    pub(crate) fn del_root(&self, root: Sp) {
        // SAFETY: the pages lock serializes list writers; `root` is on the
        // list.
        unsafe { bindings::list_del_rcu(&raw mut (*root.raw()).link) };
    }

    /// Add `sp` to the VM's possible-NX-huge-page list.
    pub(crate) fn track_possible_nx_huge_page(&self, sp: Sp) {
        // SAFETY: the pages lock is held, as the list requires; `sp` is a
        // linked TDP MMU page.
        unsafe {
            bindings::track_possible_nx_huge_page(
                self.kvm.raw(),
                sp.raw(),
                bindings::kvm_mmu_type_KVM_TDP_MMU,
            )
        };
    }

    /// Take `sp` off the VM's possible-NX-huge-page list.
    pub(crate) fn untrack_possible_nx_huge_page(&self, sp: Sp) {
        // SAFETY: as in `track_possible_nx_huge_page`.
        unsafe {
            bindings::untrack_possible_nx_huge_page(
                self.kvm.raw(),
                sp.raw(),
                bindings::kvm_mmu_type_KVM_TDP_MMU,
            )
        };
    }
}

impl Drop for PagesGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: taken by `Kvm::lock_pages`.
        unsafe { bindings::spin_unlock(&raw mut (*self.kvm.arch()).tdp_mmu_pages_lock) };
    }
}

/// A page-table page's header, `struct kvm_mmu_page`, of a TDP MMU page.
///
/// # Invariants
///
/// Points to an initialized `struct kvm_mmu_page` kept alive by one of the
/// rules in the module documentation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sp(NonNull<bindings::kvm_mmu_page>);

impl Sp {
    fn raw(self) -> *mut bindings::kvm_mmu_page {
        self.0.as_ptr()
    }

    /// # Safety
    ///
    /// `link` is the `link` member of a live kvm_mmu_page.
    unsafe fn from_link(link: *mut bindings::list_head) -> Sp {
        let offset = core::mem::offset_of!(bindings::kvm_mmu_page, link);
        // SAFETY: container_of() on the caller's guarantee.
        Sp(unsafe { NonNull::new_unchecked(link.cast::<u8>().sub(offset).cast()) })
    }

    /// # Safety
    ///
    /// `ptr` is a live TDP MMU kvm_mmu_page.
    unsafe fn from_raw(ptr: *mut bindings::kvm_mmu_page) -> Sp {
        // INVARIANT: the caller's guarantee.
        // SAFETY: not null by the caller's guarantee.
        Sp(unsafe { NonNull::new_unchecked(ptr) })
    }

    fn role(self) -> bindings::kvm_mmu_page_role {
        // SAFETY: `self` is valid; the role is read as mmu.c reads it.
        unsafe { core::ptr::read_volatile(&raw const (*self.raw()).role) }
    }

    /// The page's role as one word, to compare with a vCPU's root role.
    pub(crate) fn role_word(self) -> u32 {
        // SAFETY: the union's word covers all of the role.
        unsafe { self.role().word }
    }

    /// The level of the SPTEs this page holds.
    pub(crate) fn level(self) -> Level {
        // SAFETY: reading the bitfield view of the role union.
        let level = unsafe { self.role().__bindgen_anon_1.level() };
        let level = Level::new(level as u8);
        // A TDP MMU page is always at level 1..=5; anything else is a
        // corrupted header, reported rather than silently trusted.
        kernel::warn_on!(level.is_none());
        level.unwrap_or(Level::PG_4K)
    }

    /// The address space (SMM or not) the page translates for.
    pub(crate) fn as_id(self) -> i32 {
        // SAFETY: reading the bitfield view of the role union.
        unsafe { self.role().__bindgen_anon_1.smm() as i32 }
    }

    /// The guest access the page's SPTEs allow.
    pub(crate) fn access(self) -> u32 {
        RootRole::of(self).access()
    }

    /// Whether the page belongs to a mirror root (TDX).
    pub(crate) fn is_mirror(self) -> bool {
        // SAFETY: reading the bitfield view of the role union.
        unsafe { self.role().__bindgen_anon_1.is_mirror() != 0 }
    }

    /// Whether the root was invalidated. Protected by `mmu_lock`.
    pub(crate) fn is_invalid(self) -> bool {
        // SAFETY: reading the bitfield view of the role union.
        unsafe { self.role().__bindgen_anon_1.invalid() != 0 }
    }

    /// Mark the root invalid; `mmu_lock` is held for write.
    pub(crate) fn set_invalid(self) {
        // SAFETY: the caller holds `mmu_lock` for write, which orders all
        // writers of the role.
        unsafe { (*self.raw()).role.__bindgen_anon_1.set_invalid(1) };
    }

    /// Whether a root awaits its zap after invalidation.
    pub(crate) fn scheduled_to_zap(self) -> bool {
        // SAFETY: the union member of TDP MMU pages; protected by mmu_lock.
        unsafe { (*self.raw()).__bindgen_anon_1.tdp_mmu_scheduled_root_to_zap }
    }

    pub(crate) fn set_scheduled_to_zap(self, value: bool) {
        // SAFETY: as in `scheduled_to_zap`.
        unsafe { (*self.raw()).__bindgen_anon_1.tdp_mmu_scheduled_root_to_zap = value };
    }

    /// The first gfn the page maps.
    pub(crate) fn gfn(self) -> u64 {
        // SAFETY: immutable after initialization.
        unsafe { (*self.raw()).gfn }
    }

    /// The page table itself.
    pub(crate) fn table(self) -> Table {
        // SAFETY: `spt` is set at allocation and never changes.
        let spt = unsafe { (*self.raw()).spt };
        // INVARIANT: a TDP MMU page always has its table.
        Table(NonNull::new(spt).expect("kvm_mmu_page without a table"))
    }

    /// Whether the page was allocated by a TDP MMU.
    pub(crate) fn is_tdp_mmu_page(self) -> bool {
        // SAFETY: immutable after initialization.
        unsafe { (*self.raw()).tdp_mmu_page }
    }

    fn root_count(self) -> *mut bindings::refcount_t {
        // SAFETY: the union member of TDP MMU roots.
        unsafe { &raw mut (*self.raw()).__bindgen_anon_2.tdp_mmu_root_count }
    }

    /// Take a reference to the root unless its last one was put.
    pub(crate) fn try_get_root(self) -> bool {
        // SAFETY: a valid refcount of a live root.
        unsafe { bindings::refcount_inc_not_zero(self.root_count()) }
    }

    /// Put a reference to the root; true when it was the last.
    pub(crate) fn put_root_ref(self) -> bool {
        // SAFETY: the caller owns the reference it puts.
        unsafe { bindings::refcount_dec_and_test(self.root_count()) }
    }

    /// References held on the root.
    pub(crate) fn root_refs(self) -> u32 {
        // SAFETY: a valid refcount.
        unsafe { read_refcount(self.root_count()) as u32 }
    }

    /// Set the references of a root that nobody else sees yet.
    pub(crate) fn init_root_refs(self, refs: u32) {
        // SAFETY: a valid refcount of a fresh root.
        unsafe { bindings::refcount_set(self.root_count(), refs as c_int) };
    }

    /// Whether the page is on the possible-NX-huge-page list or about to be
    /// (`tdp_mmu_pages_lock`).
    pub(crate) fn nx_huge_page_disallowed(self) -> bool {
        // SAFETY: a plain field of a live page; the pages lock orders it
        // where that matters.
        unsafe { (*self.raw()).nx_huge_page_disallowed }
    }

    pub(crate) fn set_nx_huge_page_disallowed(self, value: bool) {
        // SAFETY: as in `nx_huge_page_disallowed`.
        unsafe { (*self.raw()).nx_huge_page_disallowed = value };
    }

    /// Account the page as a linked (`true`) or unlinked page-table page.
    pub(crate) fn account(self, kvm: &Kvm, linked: bool) {
        // SAFETY: a valid VM and page.
        unsafe { bindings::kvm_tdp_mmu_provider_account_sp(kvm.raw(), self.raw(), linked) };
    }

    /// The SPTE that points to the page's table (`None` for a root).
    pub(crate) fn parent_sptep(self) -> Option<Sptep> {
        // SAFETY: set at initialization, constant for the page's life; a
        // TDP MMU page uses the `ptep` view of the union.
        let ptep = unsafe { (*self.raw()).__bindgen_anon_4.ptep };
        // INVARIANT: an entry of the parent table, live while the page is.
        NonNull::new(ptep).map(Sptep)
    }

    /// The header of the page table `table`.
    #[inline]
    pub(crate) fn of_table(table: Table) -> Sp {
        // SAFETY: TDP MMU page tables record their header in page_private()
        // (tdp_mmu_init_sp()); `table` is live by its own invariant.
        let sp = unsafe {
            (*crate::direct_map::virt_to_page(table.0.as_ptr()))
                .__bindgen_anon_1
                .__bindgen_anon_1
                .private
        } as *mut bindings::kvm_mmu_page;
        // SAFETY: see above.
        unsafe { Sp::from_raw(sp) }
    }

    /// Free a page that was never reachable by anybody else.
    pub(crate) fn free_unused(self) {
        // SAFETY: nobody else has seen the page.
        unsafe { bindings::kvm_tdp_mmu_provider_free_sp(self.raw()) };
        TABLES.fetch_sub(1, Ordering::Relaxed);
    }

    /// Hand the page, which the caller unlinked and owns, to the VM's
    /// deferred freeing: it is freed after an RCU grace period, as lockless
    /// walkers that reached it before may still read it.
    pub(crate) fn free_after_grace_period(self, kvm: &Kvm) {
        kvm.state().reclaim.queue(self);
    }
}

/// A page-table page allocated ahead of a huge page split, linked nowhere
/// and seen by nobody else; freed on drop unless [`SpareSp::linked`].
///
/// # Invariants
///
/// `0` is a kvm_mmu_page with its table, owned by this value.
pub(crate) struct SpareSp(NonNull<bindings::kvm_mmu_page>);

impl SpareSp {
    /// Allocate one, charged to the current task's memory cgroup; may
    /// sleep, so the caller holds no spinning lock. `None` when memory is
    /// short.
    pub(crate) fn alloc() -> Option<Self> {
        // SAFETY: no requirement; the helper returns a page or NULL.
        let sp = unsafe { bindings::kvm_tdp_mmu_provider_alloc_split_sp() };
        // INVARIANT: a fresh allocation, owned by the result.
        let spare = NonNull::new(sp).map(SpareSp)?;
        TABLES.fetch_add(1, Ordering::Relaxed);
        Some(spare)
    }

    /// Initialize the page for the SPTE `parent`, which maps `gfn`, with
    /// `role`; the caller then links it. Again on each try.
    pub(crate) fn prepare(&self, parent: Sptep, gfn: u64, role: RootRole) -> Sp {
        // SAFETY: the page is ours (type invariant) and not linked yet.
        unsafe {
            bindings::kvm_tdp_mmu_provider_init_sp(self.0.as_ptr(), parent.raw(), gfn, role.0);
            Sp::from_raw(self.0.as_ptr())
        }
    }

    /// The page is linked into the tree: no longer this value's to free.
    pub(crate) fn linked(self) {
        core::mem::forget(self);
    }
}

impl Drop for SpareSp {
    fn drop(&mut self) {
        // SAFETY: ours and never linked (type invariant).
        unsafe { bindings::kvm_tdp_mmu_provider_free_sp(self.0.as_ptr()) };
        TABLES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Page tables waiting for a grace period, over all VMs, and the most there
/// have been at once (`kvm_rtdp/rcu`).
static RCU_PENDING: AtomicU64 = AtomicU64::new(0);
static RCU_PEAK: AtomicU64 = AtomicU64::new(0);

/// Page-table pages kvm_rtdp holds over all VMs: taken from a vCPU's memory
/// caches or allocated for a split, and not freed yet, whether linked,
/// spare or waiting for a grace period (`kvm_rtdp/tables`). Back to its
/// value at load once every VM is gone: a page lost on an error path, or
/// freed twice, shows here.
static TABLES: AtomicU64 = AtomicU64::new(0);

/// `kvm_rtdp/tables`: [`TABLES`].
struct TablesFile;

impl core::fmt::Debug for TablesFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "tables {}", TABLES.load(Ordering::Relaxed))
    }
}

/// The contents of `kvm_rtdp/rcu`.
struct RcuFile;

impl core::fmt::Debug for RcuFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "pending {}", RCU_PENDING.load(Ordering::Relaxed))?;
        write!(f, "peak {}", RCU_PEAK.load(Ordering::Relaxed))
    }
}

/// RCU callbacks a VM may have in flight at once.
pub(crate) const RECLAIM_SLOTS: usize = 4;

/// Chains of removed tables, linked through the `next` word of their
/// `possible_nx_huge_page_link`: a removed page is off the
/// possible-NX-huge-page list for good (`crate::pages::unlinked`), and
/// neither kvm.ko nor this module looks at that member again.
struct SpLinks;

impl reclaim::Links for SpLinks {
    fn next(&self, node: usize) -> usize {
        let sp = node as *mut bindings::kvm_mmu_page;
        // SAFETY: `node` is a removed page owned by the chain's holder.
        unsafe { (*sp).possible_nx_huge_page_link.next as usize }
    }

    fn set_next(&self, node: usize, next: usize) {
        let sp = node as *mut bindings::kvm_mmu_page;
        // SAFETY: as in `next`; only the page's owner links it.
        unsafe { (*sp).possible_nx_huge_page_link.next = next as *mut bindings::list_head };
    }
}

/// The RCU head of one of a VM's reclaim slots.
struct Batch {
    head: Opaque<bindings::callback_head>,
    slot: usize,
}

/// A VM's deferred freeing of removed page tables (`crate::reclaim`): the
/// accounting, and one RCU head per slot.
///
/// # Invariants
///
/// `batches[i].slot == i`, and a `Reclaimer` is not moved or dropped while
/// a callback of its slots is in flight ([`Reclaimer::drain`] runs before
/// the VM state goes away).
pub(crate) struct Reclaimer {
    core: reclaim::Reclaim<RECLAIM_SLOTS>,
    batches: [Batch; RECLAIM_SLOTS],
}

// SAFETY: the RCU heads are used only by `call_rcu()` for slots the
// accounting hands out to one thread at a time; the rest is atomics.
unsafe impl Send for Reclaimer {}
// SAFETY: as above.
unsafe impl Sync for Reclaimer {}

impl Reclaimer {
    /// Nothing pending, `budget` tables allowed to wait before paths that
    /// may sleep wait for a grace period themselves.
    pub(crate) fn new(budget: u64) -> Self {
        Reclaimer {
            core: reclaim::Reclaim::new(budget),
            // INVARIANT: slot numbers match positions.
            batches: core::array::from_fn(|slot| Batch {
                head: Opaque::uninit(),
                slot,
            }),
        }
    }

    /// The accounting, for statistics and the budget.
    #[inline]
    pub(crate) fn accounting(&self) -> &reclaim::Reclaim<RECLAIM_SLOTS> {
        &self.core
    }

    fn queue(&self, sp: Sp) {
        let pending = RCU_PENDING.fetch_add(1, Ordering::Relaxed) + 1;
        RCU_PEAK.fetch_max(pending, Ordering::Relaxed);
        self.core.queue(&SpLinks, sp.raw() as usize);
        self.submit();
    }

    /// Post a callback for what is queued, if a slot is free.
    fn submit(&self) {
        if let Some(slot) = self.core.submit() {
            // The callback frees exactly the slot's chain; `self` outlives
            // it (type invariant), and so does the module, which waits for
            // its callbacks before unloading (`ProviderRegistration::drop`).
            // SAFETY: the slot, and so its head, is ours until its callback
            // reports it done; see above for the callback's lifetime.
            unsafe { rcu::call_rcu(self.batches[slot].head.get(), reclaim_callback) };
        }
    }

    /// Free a chain of removed pages whose grace period has passed.
    fn free(chain: usize) -> u64 {
        let count = reclaim::free_chain(&SpLinks, chain, |node| {
            // SAFETY: a removed page, unreachable since a grace period.
            unsafe { bindings::kvm_tdp_mmu_provider_free_sp(node as *mut _) }
        });
        RCU_PENDING.fetch_sub(count, Ordering::Relaxed);
        TABLES.fetch_sub(count, Ordering::Relaxed);
        count
    }

    /// At a yield point, with `mmu_lock` dropped: wait for a grace period
    /// and free what is queued, then for the callbacks in flight if that was
    /// not enough.
    fn wait_for_grace_period(&self) {
        let chain = self.core.steal();
        rcu::synchronize_rcu();
        self.core.freed(Self::free(chain));
        if self.core.over_budget() && self.core.in_flight() {
            rcu::rcu_barrier();
        }
    }

    /// Free everything: at VM teardown, after the last removal.
    pub(crate) fn drain(&self) {
        while self.core.pending() != 0 {
            self.submit();
            rcu::rcu_barrier();
        }
    }
}

/// The RCU callback of a reclaim slot.
unsafe extern "C" fn reclaim_callback(head: *mut bindings::callback_head) {
    let offset = core::mem::offset_of!(Batch, head);
    // SAFETY: `head` is the `head` of a `Batch` (posted by
    // `Reclaimer::submit`); container_of().
    let batch = unsafe { &*head.cast::<u8>().sub(offset).cast::<Batch>() };
    let offset = core::mem::offset_of!(Reclaimer, batches);
    // SAFETY: `batch` is element `batch.slot` of the `batches` of a live
    // `Reclaimer` (its invariants); container_of().
    let reclaimer = unsafe {
        &*core::ptr::from_ref(batch)
            .sub(batch.slot)
            .cast::<u8>()
            .sub(offset)
            .cast::<Reclaimer>()
    };
    let count = Reclaimer::free(reclaimer.core.take(batch.slot));
    reclaimer.core.done(batch.slot, count);
    reclaimer.submit();
}

/// A page table: 512 SPTEs.
///
/// # Invariants
///
/// Points to a live, page-aligned TDP MMU page table (see the module
/// documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table(NonNull<u64>);

impl Table {
    /// SPTE `index` of the table.
    #[inline]
    pub(crate) fn sptep(self, index: usize) -> Sptep {
        assert!(index < SPTE_ENT_PER_PAGE);
        // SAFETY: in bounds of the table's page.
        Sptep(unsafe { self.0.add(index) })
    }

    /// The physical address, as the hardware and `kvm_mmu.root.hpa` see it.
    pub(crate) fn phys(self) -> u64 {
        crate::direct_map::virt_to_phys(self.0.as_ptr())
    }

    /// The table that the present, non-leaf `spte` points to.
    #[inline]
    pub(crate) fn child_of(spte: Spte) -> Table {
        // Page tables are direct-map pages.
        let virt = crate::direct_map::phys_to_virt(spte.0 & BASE_ADDR_MASK);
        // INVARIANT: a present non-leaf SPTE points to a live table (the
        // caller reached it under RCU or owns it).
        Table(NonNull::new(virt).expect("SPTE points to no table"))
    }

    fn from_phys(phys: u64) -> Option<Table> {
        // INVARIANT: page tables are direct-map pages; `phys` is a root's.
        NonNull::new(crate::direct_map::phys_to_virt(phys)).map(Table)
    }
}

/// A pointer to one SPTE.
///
/// # Invariants
///
/// Points into a [`Table`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sptep(NonNull<u64>);

impl Sptep {
    #[inline]
    fn cell(&self) -> &AtomicU64 {
        // What `AtomicU64::from_ptr` does, which rustc 1.85 does not inline:
        // a call per SPTE access.
        // SAFETY: a live, aligned SPTE; every concurrent access to SPTEs is
        // atomic or READ_ONCE/WRITE_ONCE-sized.
        unsafe { &*self.0.as_ptr().cast::<AtomicU64>() }
    }

    /// Read the SPTE once.
    #[inline]
    pub(crate) fn read(self) -> Spte {
        Spte(self.cell().load(Ordering::Relaxed))
    }

    /// Store `new` with a plain write: only for SPTEs that nobody else may
    /// change (`mmu_lock` held for write and no volatile bits), or to end a
    /// freeze.
    #[inline]
    pub(crate) fn write(self, new: Spte) {
        self.cell().store(new.0, Ordering::Relaxed);
    }

    /// Exchange, returning the old value.
    #[inline]
    pub(crate) fn xchg(self, new: Spte) -> Spte {
        Spte(self.cell().swap(new.0, Ordering::SeqCst))
    }

    /// Store `new` if the SPTE holds `old`; else the current value.
    #[inline]
    pub(crate) fn cmpxchg(self, old: Spte, new: Spte) -> core::result::Result<(), Spte> {
        self.cell()
            .compare_exchange(old.0, new.0, Ordering::SeqCst, Ordering::Relaxed)
            .map(|_| ())
            .map_err(Spte)
    }

    /// Clear `bits` in the SPTE, which held `old` at `level`, holding
    /// `mmu_lock` for write (`tdp_mmu_clear_spte_bits()`): atomically when
    /// the CPU may set bits in it meanwhile. Returns the value replaced.
    pub(crate) fn clear_bits(self, old: Spte, bits: u64, level: Level) -> Spte {
        if Self::needs_atomic_update(old, level) {
            Spte(self.cell().fetch_and(!bits, Ordering::SeqCst))
        } else {
            self.write(Spte(old.0 & !bits));
            old
        }
    }

    /// The SPTE as the atomic cell the freeze protocol works on.
    pub(crate) fn atomic(&self) -> &AtomicU64 {
        self.cell()
    }

    /// The table the SPTE is in.
    #[inline]
    pub(crate) fn table(self) -> Table {
        let base = (self.0.as_ptr() as usize) & !(bindings::PAGE_SIZE as usize - 1);
        // INVARIANT: the page holding a table entry is the table.
        // SAFETY: a page-aligned address inside the same live page.
        Table(unsafe { NonNull::new_unchecked(base as *mut u64) })
    }

    /// Whether the SPTE's value needs an atomic write because the CPU or
    /// the fast page fault can set bits in it outside `mmu_lock`.
    pub(crate) fn needs_atomic_update(old: Spte, level: Level) -> bool {
        old.is_present()
            && old.is_leaf(level)
            // SAFETY: a pure function of the value.
            && unsafe { bindings::spte_needs_atomic_update(old.0) }
    }

    fn raw(self) -> *mut u64 {
        self.0.as_ptr()
    }
}

/// How [`crate::iter::TdpIter`] reads kernel page tables.
pub(crate) struct KernelTables;

impl iter::Tables for KernelTables {
    type Table = Table;

    #[inline]
    fn read(&self, table: Table, index: usize) -> u64 {
        table.sptep(index).read().0
    }

    #[inline]
    fn child(&self, spte: Spte) -> Table {
        Table::child_of(spte)
    }
}

/// A walk over the SPTEs of one root covering `[start, end)`, inside an RCU
/// read-side section: its own ([`OwnRcu`], the default), which it may end to
/// yield or sleep, or its caller's ([`InRcu`]), in which it cannot yield.
///
/// # Invariants
///
/// An RCU read-side section is held whenever the iterator may read a table
/// (`rcu.guard` is `Some`, or the caller's guard is borrowed for `'a`), and the
/// iterator is marked yielded whenever the section was released since the
/// last step.
pub(crate) struct Walk<'a, R = OwnRcu> {
    kvm: &'a Kvm,
    iter: TdpIter<KernelTables>,
    end: u64,
    rcu: R,
}

/// The RCU section of a [`Walk`] that owns it, and what the walk needs to
/// yield it.
pub(crate) struct OwnRcu {
    /// `None` only while the walk has released the section to yield.
    guard: Option<rcu::Guard>,
    /// Where the walk last waited for a grace period because of the
    /// reclaim budget: it takes a step before it waits again.
    waited_at: Option<u64>,
    /// Calls of [`Walk::cond_resched`] until it next asks the scheduler
    /// and the lock (see [`RESCHED_INTERVAL`]).
    resched_countdown: u8,
}

/// The RCU section of a [`Walk`] inside its caller's: borrowed for `'g`,
/// so the walk has no way to end it, and none of the methods that yield.
/// The walks of a lockless pass over all roots (aging) use it, one
/// `rcu_read_lock()` for the pass instead of one more per root, and so do
/// the lockless walks kvm.ko starts inside its own section
/// ([`CallerRcu`]).
pub(crate) struct InRcu<'g>(PhantomData<&'g ()>);

/// An RCU read-side section that is held while a value of the type lives.
///
/// # Safety
///
/// Implementors are only constructed inside such a section, and the
/// section lasts at least until they are dropped.
pub(crate) unsafe trait RcuSection {}

// SAFETY: a guard holds its section until it is dropped.
unsafe impl RcuSection for rcu::Guard {}

/// The RCU read-side section kvm.ko holds around an entry that walks
/// without `mmu_lock` (`kvm_tdp_mmu_walk_lockless_begin()` .. `_end()`).
///
/// # Invariants
///
/// The section lasts at least as long as the value, which stays on the
/// stack of the entry (it is neither `Send` nor `Clone`).
pub(crate) struct CallerRcu(PhantomData<*mut ()>);

impl CallerRcu {
    /// # Safety
    ///
    /// The caller is inside an RCU read-side section that lasts until the
    /// returned value is dropped.
    pub(crate) unsafe fn assume() -> Self {
        // What the caller promises, as far as lockdep can tell.
        rcu::assert_read_lock_held();
        // INVARIANT: by the function's safety requirement.
        CallerRcu(PhantomData)
    }
}

// SAFETY: by the type invariant.
unsafe impl RcuSection for CallerRcu {}

/// [`Walk::cond_resched`] asks whether a task or a writer waits at every
/// `RESCHED_INTERVAL`-th step, not at every step as the C MMU does: the
/// question is two calls into C (`need_resched()` and
/// `rwlock_needbreak()` are inline in C, helpers for Rust), 27 guest
/// instructions per SPTE zapped (`make profile P=demand_paging`). A step
/// is at most a few hundred instructions, so a waiter is answered at most
/// a few thousand instructions later than on C.
const RESCHED_INTERVAL: u8 = 8;

#[inline]
fn start_iter(root: Sp, min_level: Level, start: u64) -> TdpIter<KernelTables> {
    TdpIter::start(
        &KernelTables,
        root.table(),
        root.level(),
        min_level,
        start,
        0,
    )
    .expect("a TDP MMU root walk")
}

impl<'a> Walk<'a> {
    /// Walk `[start, end)` under `root` down to `min_level`. The caller keeps
    /// `root` alive (a reference, or the vCPU's use of it).
    pub(crate) fn new(kvm: &'a Kvm, root: Sp, min_level: Level, start: u64, end: u64) -> Self {
        let rcu = rcu::read_lock();
        // INVARIANT: the walk owns the section it reads the root in.
        Walk {
            kvm,
            iter: start_iter(root, min_level, start),
            end,
            rcu: OwnRcu {
                guard: Some(rcu),
                waited_at: None,
                resched_countdown: RESCHED_INTERVAL,
            },
        }
    }
}

impl<'a> Walk<'a, InRcu<'a>> {
    /// Walk `[start, end)` under `root` down to `min_level` inside the
    /// caller's RCU section `rcu`, in which the caller found `root`.
    pub(crate) fn in_rcu(
        kvm: &'a Kvm,
        _rcu: &'a impl RcuSection,
        root: Sp,
        min_level: Level,
        start: u64,
        end: u64,
    ) -> Self {
        // INVARIANT: `_rcu` is borrowed for as long as the walk lives.
        Walk {
            kvm,
            iter: start_iter(root, min_level, start),
            end,
            rcu: InRcu(PhantomData),
        }
    }
}

impl<'a, R> Walk<'a, R> {
    /// Whether the walk is on an SPTE of the range.
    #[inline]
    pub(crate) fn valid(&self) -> bool {
        self.iter.valid() && self.iter.gfn() < self.end
    }

    #[inline]
    pub(crate) fn next(&mut self) {
        self.iter.next(&KernelTables);
    }

    #[inline]
    pub(crate) fn gfn(&self) -> u64 {
        self.iter.gfn()
    }

    #[inline]
    pub(crate) fn level(&self) -> Level {
        self.iter.level()
    }

    /// The SPTE as read when the walk moved to it (or as last refreshed).
    #[inline]
    pub(crate) fn old_spte(&self) -> Spte {
        self.iter.old_spte()
    }

    pub(crate) fn set_old_spte(&mut self, spte: Spte) {
        self.iter.set_old_spte(spte);
    }

    /// The current SPTE.
    #[inline]
    pub(crate) fn sptep(&self) -> Sptep {
        let (table, index) = self.iter.position();
        table.sptep(index)
    }

    /// The SPTE for `gfn` in the table the walk is on, at the walk's
    /// level, or `None` when `gfn` maps through another table. Reached under
    /// the walk's RCU section, like [`Walk::sptep`].
    #[inline]
    pub(crate) fn sibling(&self, gfn: u64) -> Option<Sptep> {
        let level = self.iter.level();
        let span = level.gfn_shift() + SPTE_LEVEL_BITS;
        if span < u64::BITS && gfn >> span != self.iter.gfn() >> span {
            return None;
        }
        let (table, _) = self.iter.position();
        Some(table.sptep(level.spte_index(gfn)))
    }
}

impl<'a> Walk<'a> {
    /// Whether the walk should give up `mmu_lock` and the CPU: somebody
    /// waits, and the walk moved since it last yielded.
    pub(crate) fn need_resched(&self) -> bool {
        // SAFETY: reads the current task's flag.
        let resched = unsafe { bindings::need_resched() };
        (resched || self.kvm.mmu_lock_contended())
            && self.iter.next_last_level_gfn() != self.iter.yielded_gfn()
    }

    /// Whether the walk must wait for a grace period before its next step:
    /// the VM has as many removed tables waiting as its budget allows, and
    /// the walk has not waited at this position yet. Checked before every
    /// step, so a walk that removes at most one table per step never takes
    /// the VM over its budget.
    #[inline]
    fn must_wait(&self) -> bool {
        self.rcu.waited_at != Some(self.iter.next_last_level_gfn())
            && self.kvm.state().reclaim.accounting().over_budget()
    }

    /// Yield `mmu_lock` (held as `how`) and the CPU if needed, flushing the
    /// TLBs first when `flush`; when the VM is over its reclaim budget, wait
    /// for a grace period with the lock dropped. True when it yielded: the
    /// caller moves on with [`Walk::next`], which re-walks from the root.
    ///
    /// Inline: the common answer, no, costs a countdown and the budget
    /// check; asking C and yielding are out of line.
    #[inline]
    pub(crate) fn cond_resched(&mut self, flush: bool, how: MmuLock) -> bool {
        if !self.must_wait() {
            // Cannot wrap: reset to `RESCHED_INTERVAL` whenever it hits 0.
            self.rcu.resched_countdown -= 1;
            if self.rcu.resched_countdown != 0 {
                return false;
            }
        }
        self.cond_resched_slow(flush, how)
    }

    #[cold]
    #[inline(never)]
    fn cond_resched_slow(&mut self, flush: bool, how: MmuLock) -> bool {
        let wait = self.must_wait();
        if !wait {
            self.rcu.resched_countdown = RESCHED_INTERVAL;
            if !self.need_resched() {
                return false;
            }
        }
        self.yield_lock(flush, how, wait);
        true
    }

    /// The walk is over: if the VM is over its reclaim budget, wait for a
    /// grace period before the caller removes anything else (a root).
    pub(crate) fn finish(mut self, how: MmuLock) {
        if self.must_wait() {
            self.yield_lock(false, how, true);
        }
    }

    /// Run `f`, which may sleep, with `mmu_lock` (held as `how`) and the
    /// walk's RCU section released; the caller moves on with
    /// [`Walk::next`], which re-walks from the root.
    pub(crate) fn with_lock_dropped<T>(&mut self, how: MmuLock, f: impl FnOnce() -> T) -> T {
        // INVARIANT: marked yielded before the section ends.
        self.iter.set_yielded();
        drop(self.rcu.guard.take());
        // The walk's caller holds `mmu_lock` as `how` (its entry's
        // contract), and the walk restarts from the root afterwards.
        // SAFETY: held as `how`; nothing read under the lock is used
        // again; the RCU section just ended.
        let result = unsafe { self.kvm.with_mmu_lock_dropped(how, f) };
        self.rcu.guard = Some(rcu::read_lock());
        result
    }

    fn yield_lock(&mut self, flush: bool, how: MmuLock, wait: bool) {
        if flush {
            self.kvm.flush_remote_tlbs();
        }
        if wait {
            self.rcu.waited_at = Some(self.iter.next_last_level_gfn());
            let reclaim = &self.kvm.state().reclaim;
            self.with_lock_dropped(how, || reclaim.wait_for_grace_period());
            return;
        }
        // INVARIANT: marked yielded before the section ends.
        self.iter.set_yielded();
        drop(self.rcu.guard.take());
        // The walk's caller holds `mmu_lock` as `how` (its entry's
        // contract), and the walk re-walks from the root after this.
        // SAFETY: held as `how`; nothing read under the lock is used
        // again; the RCU section just ended.
        unsafe { self.kvm.cond_resched_mmu_lock(how) };
        self.rcu.guard = Some(rcu::read_lock());
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

    /// The vCPU's current (direct) root.
    pub(crate) fn root(&self) -> Option<Sp> {
        // SAFETY: `root.hpa` is the physical address of a TDP MMU root's
        // table, held by the vCPU's reference, or invalid.
        let hpa = unsafe { (*self.mmu()).root.hpa };
        if hpa == INVALID_PAGE {
            return None;
        }
        Table::from_phys(hpa).map(Sp::of_table)
    }

    /// Make `root` the vCPU's root (`mirror`: its mirror root).
    pub(crate) fn set_root(&self, root: Sp, mirror: bool) {
        let hpa = root.table().phys();
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
    pub(crate) fn alloc_sp(&self, parent: Option<Sptep>, gfn: u64, role: RootRole) -> Sp {
        let ptep = parent.map_or(core::ptr::null_mut(), Sptep::raw);
        TABLES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caches were topped up before the fault or root load;
        // the helper initializes the header for `ptep`.
        unsafe {
            Sp::from_raw(bindings::kvm_tdp_mmu_provider_alloc_sp(
                self.raw(),
                ptep,
                gfn,
                role.0,
            ))
        }
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
pub(crate) struct RootRole(bindings::kvm_mmu_page_role);

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
    pub(crate) fn of(sp: Sp) -> Self {
        RootRole(sp.role())
    }
}

impl Fault {
    fn get(&self) -> &bindings::kvm_page_fault {
        // SAFETY: only the faulting vCPU's thread uses the fault; this
        // module changes it only through `hugepage_adjust`, which takes
        // `&self` and does not overlap with a live reference.
        unsafe { &*self.raw() }
    }

    pub(crate) fn gfn(&self) -> u64 {
        self.get().gfn
    }

    pub(crate) fn goal_level(&self) -> Level {
        Level::new(self.get().goal_level).unwrap_or(Level::PG_4K)
    }

    pub(crate) fn req_level(&self) -> Level {
        Level::new(self.get().req_level).unwrap_or(Level::PG_4K)
    }

    pub(crate) fn huge_page_disallowed(&self) -> bool {
        self.get().huge_page_disallowed
    }

    pub(crate) fn nx_huge_page_workaround_enabled(&self) -> bool {
        self.get().nx_huge_page_workaround_enabled
    }

    pub(crate) fn prefetch(&self) -> bool {
        self.get().prefetch
    }

    pub(crate) fn write(&self) -> bool {
        self.get().write
    }

    /// Whether the gfn has no memslot: an MMIO access.
    pub(crate) fn is_mmio(&self) -> bool {
        self.get().slot.is_null()
    }

    /// Choose the largest mapping level the host and the guest allow.
    pub(crate) fn hugepage_adjust(&self, vcpu: &Vcpu) {
        // SAFETY: the faulting vCPU's own fault, no reference into it held.
        unsafe { bindings::kvm_mmu_hugepage_adjust(vcpu.raw(), self.raw()) };
    }

    /// Lower the goal level where an existing huge page was split for the
    /// NX huge page workaround.
    pub(crate) fn disallowed_hugepage_adjust(&self, spte: Spte, level: Level) {
        // SAFETY: as in `hugepage_adjust`.
        unsafe { bindings::disallowed_hugepage_adjust(self.raw(), spte.0, level.get().into()) };
    }

    /// The leaf SPTE for this fault at `gfn` in `sp`, replacing `old`; also
    /// whether the mapping had to be write-protected.
    pub(crate) fn make_spte(&self, vcpu: &Vcpu, sp: Sp, gfn: u64, old: Spte) -> (Spte, bool) {
        let f = self.get();
        let mut new = 0u64;
        // SAFETY: valid vCPU, page, memslot and fault; `new` is written.
        let wrprot = unsafe {
            bindings::make_spte(
                vcpu.raw(),
                sp.raw(),
                f.slot,
                RootRole::of(sp).access(),
                gfn,
                f.pfn,
                old.0,
                f.prefetch,
                false,
                f.map_writable,
                &mut new,
            )
        };
        (Spte(new), wrprot)
    }
}

/// The SPTE of a non-leaf entry pointing to `table`.
pub(crate) fn make_nonleaf_spte(table: Table) -> Spte {
    // SAFETY: `table` is a page table; the helper only encodes its address.
    let ad_enabled = unsafe { bindings::kvm_tdp_mmu_provider_ad_enabled() };
    // SAFETY: as above.
    Spte(unsafe { bindings::make_nonleaf_spte(table.0.as_ptr(), !ad_enabled) })
}

/// Entry `index` of the table that splits the huge page `huge` into pages of
/// the level of `role`.
pub(crate) fn make_small_spte(kvm: &Kvm, huge: Spte, role: RootRole, index: usize) -> Spte {
    // SAFETY: a valid VM; the helper only computes a value.
    Spte(unsafe { bindings::make_small_spte(kvm.raw(), huge.0, role.0, index as c_int) })
}

/// The first gfn above what a TDP MMU walk may cover.
/// The huge SPTE at `level` that maps what `small`, the first leaf below
/// it, maps and the rest of the range (`make_huge_spte()`).
pub(crate) fn make_huge_spte(kvm: &Kvm, small: Spte, level: Level) -> Spte {
    // SAFETY: a valid VM; a pure function of its arguments otherwise.
    Spte(unsafe { bindings::make_huge_spte(kvm.raw(), small.0, level.get().into()) })
}

pub(crate) fn max_gfn_exclusive() -> u64 {
    // SAFETY: reads KVM's configuration.
    unsafe { bindings::kvm_tdp_mmu_provider_max_gfn_exclusive() }
}

impl GfnRange {
    fn get(&self) -> &bindings::kvm_gfn_range {
        // SAFETY: kvm.ko passes a valid range for the duration of the call.
        unsafe { &*self.raw() }
    }

    pub(crate) fn start(&self) -> u64 {
        self.get().start
    }

    pub(crate) fn end(&self) -> u64 {
        self.get().end
    }

    pub(crate) fn may_block(&self) -> bool {
        self.get().may_block
    }

    /// The address space of the range's memslot.
    pub(crate) fn as_id(&self) -> i32 {
        // SAFETY: notifier ranges always carry their memslot.
        unsafe { (*self.get().slot).as_id as i32 }
    }
}

impl Memslot {
    fn get(&self) -> &bindings::kvm_memory_slot {
        // SAFETY: kvm.ko passes a memslot that stays valid for the call.
        unsafe { &*self.raw() }
    }

    pub(crate) fn base_gfn(&self) -> u64 {
        self.get().base_gfn
    }

    /// The first gfn after the slot.
    pub(crate) fn end_gfn(&self) -> u64 {
        self.get().base_gfn + self.get().npages as u64
    }

    pub(crate) fn npages(&self) -> u64 {
        self.get().npages as u64
    }

    pub(crate) fn as_id(&self) -> i32 {
        self.get().as_id as i32
    }

    /// Whether dirty logging is on (`kvm_slot_dirty_track_enabled()`).
    pub(crate) fn dirty_logging(&self) -> bool {
        self.get().flags & bindings::KVM_MEM_LOG_DIRTY_PAGES != 0
    }

    /// The largest level at which `gfn` of this slot may be mapped now
    /// (`kvm_mmu_max_mapping_level()`): host mapping size, disallowed
    /// huge pages, memory attributes.
    pub(crate) fn max_mapping_level(&self, kvm: &Kvm, gfn: u64) -> u8 {
        // SAFETY: a valid VM and memslot; no fault (NULL) asks for the
        // level the slot and the host allow.
        let level = unsafe {
            bindings::kvm_mmu_max_mapping_level(kvm.raw(), core::ptr::null_mut(), self.raw(), gfn)
        };
        level.clamp(0, u8::MAX.into()) as u8
    }
}

// The entry points kvm.ko calls. Each turns its raw arguments into the safe
// types above; kvm.ko guarantees they are valid for the call, with the
// locking of the corresponding kvm_tdp_mmu_*() function.

extern "C" fn bind(kvm: *mut bindings::kvm) -> bool {
    // SAFETY: see above; `bind` runs before `init`, at VM creation.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    if !crate::bind_new_vms() {
        return false;
    }
    if kvm.has_mirrored_tdp() {
        pr_info!("a TDX VM stays on the C TDP MMU: kvm_rtdp does not propagate to external page tables\n");
        return false;
    }
    true
}

unsafe extern "C" fn init(kvm: *mut bindings::kvm) -> c_int {
    // SAFETY: see above.
    match crate::vm::init(unsafe { Kvm::from_raw(kvm) }) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

unsafe extern "C" fn uninit(kvm: *mut bindings::kvm) {
    // SAFETY: see above.
    let kvm = unsafe { Kvm::from_raw(kvm) };
    crate::roots::uninit(kvm);
    crate::vm::uninit(kvm);
}

unsafe extern "C" fn alloc_root(vcpu: *mut bindings::kvm_vcpu, mirror: bool) {
    // SAFETY: see above.
    crate::roots::alloc_root(unsafe { Vcpu::from_raw(vcpu) }, mirror);
}

unsafe extern "C" fn put_root(kvm: *mut bindings::kvm, root: *mut bindings::kvm_mmu_page) {
    // SAFETY: see above; the caller owns a reference to `root`.
    crate::roots::put_root(unsafe { Kvm::from_raw(kvm) }, unsafe { Sp::from_raw(root) });
}

unsafe extern "C" fn invalidate_roots(
    kvm: *mut bindings::kvm,
    types: bindings::kvm_tdp_mmu_root_types,
) {
    // SAFETY: see above.
    crate::roots::invalidate_roots(unsafe { Kvm::from_raw(kvm) }, RootTypes(types));
}

unsafe extern "C" fn zap_invalidated_roots(kvm: *mut bindings::kvm, shared: bool) {
    let how = if shared {
        MmuLock::Shared
    } else {
        MmuLock::Exclusive
    };
    // SAFETY: see above.
    crate::roots::zap_invalidated_roots(unsafe { Kvm::from_raw(kvm) }, how);
}

unsafe extern "C" fn zap_all(kvm: *mut bindings::kvm) {
    // SAFETY: see above.
    crate::zap::zap_all(unsafe { Kvm::from_raw(kvm) });
}

unsafe extern "C" fn zap_leafs(kvm: *mut bindings::kvm, start: u64, end: u64, flush: bool) -> bool {
    // SAFETY: see above.
    crate::zap::zap_leafs(unsafe { Kvm::from_raw(kvm) }, start, end, flush)
}

unsafe extern "C" fn unmap_gfn_range(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
    flush: bool,
) -> bool {
    // SAFETY: see above.
    let range = unsafe { GfnRange::from_raw(range) };
    // SAFETY: see above.
    crate::zap::unmap_gfn_range(unsafe { Kvm::from_raw(kvm) }, range, flush)
}

unsafe extern "C" fn map(
    vcpu: *mut bindings::kvm_vcpu,
    fault: *mut bindings::kvm_page_fault,
) -> c_int {
    // SAFETY: see above.
    let (vcpu, fault) = unsafe { (Vcpu::from_raw(vcpu), Fault::from_raw(fault)) };
    crate::fault::map(vcpu, fault).to_c()
}

unsafe extern "C" fn get_walk(
    vcpu: *mut bindings::kvm_vcpu,
    addr: u64,
    sptes: *mut u64,
    root_level: *mut c_int,
) -> c_int {
    // SAFETY: see above.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    // SAFETY: kvm.ko calls the entry inside
    // kvm_tdp_mmu_walk_lockless_begin() .. _end(), an RCU read-side
    // section that outlasts this function.
    let rcu = unsafe { CallerRcu::assume() };
    // SAFETY: `root_level` is writable.
    unsafe { *root_level = vcpu.root_level() };
    // SAFETY: `sptes` has room for one SPTE per level
    // (PT64_ROOT_MAX_LEVEL + 1), indexed by level.
    let sptes = unsafe { core::slice::from_raw_parts_mut(sptes, Level::MAX.get() as usize + 1) };
    crate::walk::get_walk(vcpu, &rcu, addr, sptes)
}

unsafe extern "C" fn invalidate_start(kvm: *mut bindings::kvm) {
    // SAFETY: see above.
    crate::retry::start(unsafe { Kvm::from_raw(kvm) });
}

unsafe extern "C" fn invalidate_range_add(kvm: *mut bindings::kvm, start: u64, end: u64) {
    // SAFETY: see above.
    crate::retry::range_add(unsafe { Kvm::from_raw(kvm) }, start, end);
}

unsafe extern "C" fn invalidate_end(kvm: *mut bindings::kvm) {
    // SAFETY: see above.
    crate::retry::end(unsafe { Kvm::from_raw(kvm) });
}

unsafe extern "C" fn invalidate_retry_gfn(
    kvm: *mut bindings::kvm,
    mmu_seq: usize,
    gfn: u64,
    locked: bool,
) -> bool {
    // SAFETY: see above.
    crate::retry::must_retry(unsafe { Kvm::from_raw(kvm) }, mmu_seq as u64, gfn, locked)
}

unsafe extern "C" fn check_mmio_spte(vcpu: *mut bindings::kvm_vcpu, spte: u64) -> bool {
    // SAFETY: see above.
    crate::mmio::check(unsafe { Vcpu::from_raw(vcpu) }, Spte(spte))
}

unsafe extern "C" fn fast_pf_get_last_sptep(
    vcpu: *mut bindings::kvm_vcpu,
    gfn: u64,
    spte: *mut u64,
) -> *mut u64 {
    // SAFETY: see above; the caller is in kvm_tdp_mmu_walk_lockless_begin(),
    // an RCU read-side section that keeps the returned SPTE alive.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    // SAFETY: as above.
    let rcu = unsafe { CallerRcu::assume() };
    match crate::walk::last_spte(vcpu, &rcu, gfn) {
        Some((sptep, value)) => {
            // SAFETY: `spte` is writable.
            unsafe { *spte = value.0 };
            sptep.raw()
        }
        None => core::ptr::null_mut(),
    }
}

unsafe extern "C" fn zap_possible_nx_huge_page(
    kvm: *mut bindings::kvm,
    sp: *mut bindings::kvm_mmu_page,
) -> bool {
    // SAFETY: see above; `sp` is on the possible-NX-huge-page list, which
    // kvm.ko read under the pages lock, and `mmu_lock` held for read keeps
    // it from being freed.
    crate::zap::zap_possible_nx_huge_page(unsafe { Kvm::from_raw(kvm) }, unsafe {
        Sp::from_raw(sp)
    })
}

unsafe extern "C" fn age_gfn_range(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
) -> bool {
    // SAFETY: see above.
    let (kvm, range) = unsafe { (Kvm::from_raw(kvm), GfnRange::from_raw(range)) };
    crate::age::age(kvm, range, crate::age::Aging::Clear)
}

unsafe extern "C" fn test_age_gfn(
    kvm: *mut bindings::kvm,
    range: *mut bindings::kvm_gfn_range,
) -> bool {
    // SAFETY: see above.
    let (kvm, range) = unsafe { (Kvm::from_raw(kvm), GfnRange::from_raw(range)) };
    crate::age::age(kvm, range, crate::age::Aging::Test)
}

unsafe extern "C" fn wrprot_slot(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
    min_level: c_int,
) -> bool {
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    crate::dirty::wrprot_slot(kvm, slot, min_level)
}

unsafe extern "C" fn clear_dirty_slot(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
) {
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    crate::dirty::clear_dirty_slot(kvm, slot)
}

unsafe extern "C" fn clear_dirty_pt_masked(
    kvm: *mut bindings::kvm,
    slot: *mut bindings::kvm_memory_slot,
    gfn: u64,
    mask: usize,
    wrprot: bool,
) {
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot)) };
    crate::dirty::clear_dirty_pt_masked(kvm, slot, gfn, mask as u64, wrprot)
}

unsafe extern "C" fn write_protect_gfn(
    kvm: *mut bindings::kvm,
    slot: *mut bindings::kvm_memory_slot,
    gfn: u64,
    min_level: c_int,
) -> bool {
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot)) };
    crate::dirty::write_protect_gfn(kvm, slot, gfn, min_level)
}

unsafe extern "C" fn recover_huge_pages(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
) {
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    crate::huge_pages::recover(kvm, slot)
}

unsafe extern "C" fn try_split_huge_pages(
    kvm: *mut bindings::kvm,
    slot: *const bindings::kvm_memory_slot,
    start: u64,
    end: u64,
    target_level: c_int,
    shared: bool,
) {
    let how = if shared {
        MmuLock::Shared
    } else {
        MmuLock::Exclusive
    };
    // SAFETY: see above.
    let (kvm, slot) = unsafe { (Kvm::from_raw(kvm), Memslot::from_raw(slot.cast_mut())) };
    crate::huge_pages::try_split(kvm, slot, start, end, target_level, how)
}

/// kvm_rtdp registered as kvm.ko's TDP MMU provider; unregistered on drop.
///
/// # Invariants
///
/// `ops` is the `struct kvm_tdp_mmu_ops` that kvm.ko holds as the registered
/// provider; it neither moves nor changes until `drop` has unregistered it.
pub(crate) struct ProviderRegistration {
    ops: KBox<bindings::kvm_tdp_mmu_ops>,
}

// SAFETY: the ops table is immutable after registration, and kvm.ko reads it
// from any thread; the raw pointers in it refer to 'static data.
unsafe impl Send for ProviderRegistration {}
// SAFETY: as above, shared references only read immutable data.
unsafe impl Sync for ProviderRegistration {}

impl ProviderRegistration {
    /// Register with kvm.ko. Fails with `EBUSY` when another provider is
    /// registered and `EINVAL` when kvm.ko's `struct kvm_tdp_mmu_ops` has
    /// another size; kvm.ko logs which.
    pub(crate) fn new(module: &'static ThisModule, name: &'static CStr) -> Result<Self> {
        let ops = KBox::new(
            bindings::kvm_tdp_mmu_ops {
                size: core::mem::size_of::<bindings::kvm_tdp_mmu_ops>(),
                owner: module.as_ptr(),
                name: name.as_ptr().cast(),
                bind: Some(bind),
                init: Some(init),
                uninit: Some(uninit),
                alloc_root: Some(alloc_root),
                put_root: Some(put_root),
                invalidate_roots: Some(invalidate_roots),
                zap_invalidated_roots: Some(zap_invalidated_roots),
                zap_all: Some(zap_all),
                zap_leafs: Some(zap_leafs),
                unmap_gfn_range: Some(unmap_gfn_range),
                map: Some(map),
                get_walk: Some(get_walk),
                fast_pf_get_last_sptep: Some(fast_pf_get_last_sptep),
                invalidate_start: Some(invalidate_start),
                invalidate_range_add: Some(invalidate_range_add),
                invalidate_end: Some(invalidate_end),
                invalidate_retry_gfn: Some(invalidate_retry_gfn),
                check_mmio_spte: Some(check_mmio_spte),
                zap_possible_nx_huge_page: Some(zap_possible_nx_huge_page),
                age_gfn_range: Some(age_gfn_range),
                test_age_gfn: Some(test_age_gfn),
                wrprot_slot: Some(wrprot_slot),
                clear_dirty_slot: Some(clear_dirty_slot),
                clear_dirty_pt_masked: Some(clear_dirty_pt_masked),
                write_protect_gfn: Some(write_protect_gfn),
                recover_huge_pages: Some(recover_huge_pages),
                try_split_huge_pages: Some(try_split_huge_pages),
                ..Default::default()
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `ops` is a valid `struct kvm_tdp_mmu_ops` whose pointers
        // refer to 'static data; it stays allocated and unchanged until
        // `drop` unregisters it.
        to_result(unsafe { bindings::kvm_tdp_mmu_register_provider(&*ops) })?;
        // INVARIANT: registered just above; the box is never moved out of.
        Ok(Self { ops })
    }

    /// Number of entries served by Rust rather than kvm.ko's built-in code.
    pub(crate) fn served(&self) -> usize {
        let o = &*self.ops;
        [
            o.init.is_some(),
            o.uninit.is_some(),
            o.alloc_root.is_some(),
            o.put_root.is_some(),
            o.zap_leafs.is_some(),
            o.zap_possible_nx_huge_page.is_some(),
            o.zap_all.is_some(),
            o.invalidate_roots.is_some(),
            o.zap_invalidated_roots.is_some(),
            o.map.is_some(),
            o.unmap_gfn_range.is_some(),
            o.age_gfn_range.is_some(),
            o.test_age_gfn.is_some(),
            o.wrprot_slot.is_some(),
            o.clear_dirty_slot.is_some(),
            o.clear_dirty_pt_masked.is_some(),
            o.recover_huge_pages.is_some(),
            o.write_protect_gfn.is_some(),
            o.try_split_huge_pages.is_some(),
            o.get_walk.is_some(),
            o.fast_pf_get_last_sptep.is_some(),
        ]
        .iter()
        .filter(|served| **served)
        .count()
    }

    /// Number of MMU hooks served by Rust.
    pub(crate) fn hooks_served(&self) -> usize {
        let o = &*self.ops;
        [
            o.invalidate_start.is_some(),
            o.invalidate_range_add.is_some(),
            o.invalidate_end.is_some(),
            o.invalidate_retry_gfn.is_some(),
            o.check_mmio_spte.is_some(),
        ]
        .iter()
        .filter(|served| **served)
        .count()
    }
}

impl Drop for ProviderRegistration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant `ops` is registered. No VM is bound
        // to it: each bound VM holds a reference to this module, so the
        // module (and with it this registration) cannot be going away.
        unsafe { bindings::kvm_tdp_mmu_unregister_provider(&*self.ops) };
        // Page tables freed by `Sp::free_after_grace_period` run our
        // callback: wait for all of them before the module text goes away.
        kernel::sync::rcu::rcu_barrier();
    }
}

/// The module's debugfs directory, `kvm_rtdp/`, published for the per-VM
/// state to hang its files on.
static DEBUGFS_ROOT: AtomicPtr<Dir> = AtomicPtr::new(core::ptr::null_mut());

/// `kvm_rtdp/` in debugfs, reachable from the entry points while it lives.
///
/// # Invariants
///
/// While it lives, `DEBUGFS_ROOT` points to a `Dir` it owns. It is dropped
/// only at module exit, after the provider is unregistered, when no VM is
/// bound (a bound VM pins the module), so no entry point runs then.
pub(crate) struct DebugfsRoot {
    /// `kvm_rtdp/rcu`: page tables waiting for a grace period, and the peak.
    _rcu: Pin<KBox<File<RcuFile>>>,
    /// `kvm_rtdp/tables`: page-table pages held over all VMs.
    _tables: Pin<KBox<File<TablesFile>>>,
}

impl DebugfsRoot {
    /// Create `kvm_rtdp/` and its module-wide files, and publish it.
    pub(crate) fn new() -> Result<Self> {
        let dir = KBox::new(Dir::new(c"kvm_rtdp"), GFP_KERNEL)?;
        let rcu = KBox::pin_init(dir.read_only_file(c"rcu", RcuFile), GFP_KERNEL)?;
        let tables = KBox::pin_init(dir.read_only_file(c"tables", TablesFile), GFP_KERNEL)?;
        // INVARIANT: the box is published and owned until `drop`.
        DEBUGFS_ROOT.store(KBox::into_raw(dir), Ordering::Release);
        Ok(DebugfsRoot {
            _rcu: rcu,
            _tables: tables,
        })
    }

    /// A handle to `kvm_rtdp/`, from an entry point of a bound VM.
    pub(crate) fn get() -> Option<Dir> {
        let dir = DEBUGFS_ROOT.load(Ordering::Acquire);
        // SAFETY: non-null only while a `DebugfsRoot` lives, which outlives
        // every entry point call (type invariant).
        (!dir.is_null()).then(|| unsafe { (*dir).clone() })
    }
}

impl Drop for DebugfsRoot {
    fn drop(&mut self) {
        let dir = DEBUGFS_ROOT.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !dir.is_null() {
            // SAFETY: published by `new` from `KBox::into_raw`, taken once.
            drop(unsafe { KBox::from_raw(dir) });
        }
    }
}
