// SPDX-License-Identifier: GPL-2.0

//! Page-table pages, `struct kvm_mmu_page`: [`Sp`] for one reached in the
//! tree, [`NewSp`] for one that was never linked, [`RemovedSp`] for one
//! that was unlinked.
//!
//! kvm_rtdp counts the pages it holds over all VMs in [`TABLES`]
//! (`kvm_rtdp/tables`): taken from a vCPU's memory caches or allocated for a
//! split, and not freed yet, whether linked, new or waiting for a grace
//! period. Back to its value at load once every VM is gone: a page lost on
//! an error path shows there.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::bindings;

use super::{Kvm, RootRole, Sptep, Table};
use crate::level::Level;
use crate::spte::Spte;

/// Page-table pages held over all VMs (`kvm_rtdp/tables`).
pub(super) static TABLES: AtomicU64 = AtomicU64::new(0);

/// The header of a TDP MMU page-table page, reached in the tree.
///
/// # Invariants
///
/// Points to an initialized `struct kvm_mmu_page` with its table (`spt`,
/// set by kvm.ko before the page is handed out and never changed) that
/// stays allocated for `'a` (see the module documentation of `crate::kvm`
/// for what keeps it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sp<'a> {
    ptr: NonNull<bindings::kvm_mmu_page>,
    _life: PhantomData<&'a bindings::kvm_mmu_page>,
}

impl<'a> Sp<'a> {
    pub(super) fn raw(self) -> *mut bindings::kvm_mmu_page {
        self.ptr.as_ptr()
    }

    pub(super) fn ptr(self) -> NonNull<bindings::kvm_mmu_page> {
        self.ptr
    }

    /// # Safety
    ///
    /// `ptr` is an initialized TDP MMU kvm_mmu_page with its table that
    /// stays allocated for `'a`.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::kvm_mmu_page) -> Self {
        // INVARIANT: the caller's guarantee.
        Sp {
            // SAFETY: not null by the caller's guarantee.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _life: PhantomData,
        }
    }

    /// # Safety
    ///
    /// `link` is the `link` member of a TDP MMU kvm_mmu_page, with its
    /// table, allocated for `'a`.
    pub(super) unsafe fn from_link(link: *mut bindings::list_head) -> Self {
        let offset = core::mem::offset_of!(bindings::kvm_mmu_page, link);
        // SAFETY: container_of() on the caller's guarantee.
        unsafe { Sp::from_raw(link.cast::<u8>().sub(offset).cast()) }
    }

    pub(super) fn role(self) -> bindings::kvm_mmu_page_role {
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
        level_of(self.role())
    }

    /// The address space (SMM or not) the page translates for.
    pub(crate) fn as_id(self) -> i32 {
        // SAFETY: reading the bitfield view of the role union.
        unsafe { self.role().__bindgen_anon_1.smm() as i32 }
    }

    /// Whether the page translates for a nested guest (L2).
    pub(crate) fn guest_mode(self) -> bool {
        // SAFETY: reading the bitfield view of the role union.
        unsafe { self.role().__bindgen_anon_1.guest_mode() != 0 }
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

    /// The first gfn the page maps.
    pub(crate) fn gfn(self) -> u64 {
        // SAFETY: immutable after initialization.
        unsafe { (*self.raw()).gfn }
    }

    /// The page table itself, alive as long as its header.
    pub(crate) fn table(self) -> Table<'a> {
        // SAFETY: the page has its table (type invariant), which lives as
        // long as the header.
        unsafe { Table::from_raw(table_of(self.ptr), self.level()) }
    }

    /// Whether the page was allocated by a TDP MMU.
    pub(crate) fn is_tdp_mmu_page(self) -> bool {
        // SAFETY: immutable after initialization.
        unsafe { (*self.raw()).tdp_mmu_page }
    }

    /// The page's `nx_huge_page_disallowed` flag, as one atomic byte: once
    /// the page is linked, kvm.ko's NX recovery and the faults and zaps of
    /// other tasks (all under `mmu_lock` for read) write it under the pages
    /// lock while others may read it.
    fn nx_flag(self) -> &'a AtomicBool {
        // SAFETY: a `bool` field of a page alive for `'a`, of the size and
        // alignment of an `AtomicBool`; every access from Rust is atomic.
        unsafe { AtomicBool::from_ptr(&raw mut (*self.raw()).nx_huge_page_disallowed) }
    }

    /// Whether the page is on the possible-NX-huge-page list or about to be;
    /// final while `_pages`, the pages lock, is held.
    pub(crate) fn nx_huge_page_disallowed(self, _pages: &super::PagesGuard<'_>) -> bool {
        self.nx_flag().load(Ordering::Relaxed)
    }

    /// [`Sp::nx_huge_page_disallowed`] without the pages lock: a hint,
    /// which may change before the caller takes the lock.
    pub(crate) fn may_be_nx_huge_page_disallowed(self) -> bool {
        self.nx_flag().load(Ordering::Relaxed)
    }

    /// Set or clear [`Sp::nx_huge_page_disallowed`] under the pages lock
    /// (`crate::pages`).
    pub(crate) fn set_nx_huge_page_disallowed(self, _pages: &super::PagesGuard<'_>, value: bool) {
        self.nx_flag().store(value, Ordering::Relaxed);
    }

    /// Account the page as a linked (`true`) or unlinked page-table page.
    pub(crate) fn account(self, kvm: &Kvm, linked: bool) {
        // SAFETY: a valid VM and page.
        unsafe { bindings::kvm_tdp_mmu_provider_account_sp(kvm.raw(), self.raw(), linked) };
    }

    /// The SPTE that links the page (`None` for a root), in the parent
    /// table, which lives at least as long as this page is linked.
    pub(crate) fn parent_sptep(self) -> Option<Sptep<'a>> {
        // SAFETY: set at initialization, constant for the page's life; a
        // TDP MMU page uses the `ptep` view of the union.
        let ptep = unsafe { (*self.raw()).__bindgen_anon_4.ptep };
        let level = self.level().upper()?;
        // SAFETY: an entry of the parent table at the level above.
        NonNull::new(ptep).map(|ptep| unsafe { Sptep::from_raw(ptep, level) })
    }

    /// The header of the page table at `table`.
    ///
    /// # Safety
    ///
    /// `table` is the table of a TDP MMU page allocated for `'a`.
    #[inline]
    pub(super) unsafe fn of_table(table: NonNull<u64>) -> Self {
        // SAFETY: TDP MMU page tables record their header in page_private()
        // (tdp_mmu_init_sp()).
        let sp = unsafe {
            (*super::direct_map::virt_to_page(table.as_ptr()))
                .__bindgen_anon_1
                .__bindgen_anon_1
                .private
        } as *mut bindings::kvm_mmu_page;
        // SAFETY: see above; alive for `'a` by the caller's guarantee.
        unsafe { Sp::from_raw(sp) }
    }
}

impl super::CallerRcu {
    /// A page kvm.ko found on the possible-NX-huge-page list inside the
    /// RCU section this stands for; it lives as long as the section
    /// (`mmu_lock` held for read does not keep it: other readers may remove
    /// and queue it for freeing meanwhile).
    ///
    /// # Safety
    ///
    /// `ptr` is a TDP MMU page of the VM that was on the list, linked or
    /// queued for freeing no earlier than this section began.
    pub(crate) unsafe fn sp_from_raw(&self, ptr: *mut bindings::kvm_mmu_page) -> Sp<'_> {
        // SAFETY: TDP MMU pages are freed a grace period after their
        // removal, which cannot end while the section `self` stands for is
        // held, and `self` is borrowed for the returned lifetime.
        unsafe { Sp::from_raw(ptr) }
    }
}

fn level_of(role: bindings::kvm_mmu_page_role) -> Level {
    // SAFETY: reading the bitfield view of the role union.
    let level = unsafe { role.__bindgen_anon_1.level() };
    let level = Level::new(level as u8);
    // A TDP MMU page is always at level 1..=5; anything else is a
    // corrupted header, reported rather than silently trusted.
    kernel::warn_on!(level.is_none());
    level.unwrap_or(Level::PG_4K)
}

/// The table of `sp`.
///
/// # Safety
///
/// `sp` is an initialized kvm_mmu_page with its table. kvm.ko sets `spt`
/// before it hands a page out (tdp_mmu_alloc_sp() from a topped-up cache;
/// tdp_mmu_alloc_sp_for_split() returns no page without one) and never
/// changes it, so the handles take it as their invariant rather than
/// checking it on every walk.
#[inline]
unsafe fn table_of(sp: NonNull<bindings::kvm_mmu_page>) -> NonNull<u64> {
    // SAFETY: `sp` is initialized (the caller's guarantee).
    let spt = unsafe { (*sp.as_ptr()).spt };
    // SAFETY: not null by the caller's guarantee.
    unsafe { NonNull::new_unchecked(spt) }
}

/// A page-table page that nobody else has seen: from a vCPU's memory
/// caches ([`super::Vcpu::alloc_sp`]) or allocated ahead of a split
/// ([`NewSp::alloc`]). Freed on drop unless published.
///
/// # Invariants
///
/// Owns `ptr`, a kvm_mmu_page with its table, linked nowhere.
pub(crate) struct NewSp {
    ptr: NonNull<bindings::kvm_mmu_page>,
}

impl NewSp {
    /// # Safety
    ///
    /// `ptr` is a page with its table that the caller owns and gives to
    /// the result.
    pub(super) unsafe fn from_raw(ptr: NonNull<bindings::kvm_mmu_page>) -> Self {
        TABLES.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: the caller's guarantee.
        NewSp { ptr }
    }

    /// Allocate one for a split, charged to the current task's memory
    /// cgroup; may sleep, so the caller holds no spinning lock. `None` when
    /// memory is short. [`NewSp::prepare`] initializes it.
    pub(crate) fn alloc() -> Option<Self> {
        // SAFETY: no requirement; the helper returns a page or NULL.
        let sp = unsafe { bindings::kvm_tdp_mmu_provider_alloc_split_sp() };
        // SAFETY: a fresh allocation, ours.
        NonNull::new(sp).map(|sp| unsafe { NewSp::from_raw(sp) })
    }

    /// Initialize the header for the SPTE `parent`, which maps `gfn`, with
    /// `role`; again before each try to link it elsewhere.
    pub(crate) fn prepare(&mut self, parent: Sptep<'_>, gfn: u64, role: RootRole) {
        // SAFETY: the page is ours and not linked (type invariant).
        unsafe {
            bindings::kvm_tdp_mmu_provider_init_sp(self.ptr.as_ptr(), parent.raw(), gfn, role.0)
        };
    }

    pub(super) fn raw(&self) -> *mut bindings::kvm_mmu_page {
        self.ptr.as_ptr()
    }

    /// The page as a header; unpublished, so nobody else reads it.
    pub(crate) fn sp(&self) -> Sp<'_> {
        // SAFETY: ours for as long as `self` is borrowed.
        unsafe { Sp::from_raw(self.ptr.as_ptr()) }
    }

    /// Fill the table, entry `i` with `entry(i)`: plain stores, as nobody
    /// else can see it yet.
    pub(crate) fn fill(&mut self, mut entry: impl FnMut(usize) -> Spte) {
        // SAFETY: the page has its table (type invariant).
        let table = unsafe { table_of(self.ptr) };
        for i in 0..crate::level::SPTE_ENT_PER_PAGE {
            // SAFETY: in bounds of the table, which is ours alone.
            unsafe { *table.as_ptr().add(i) = entry(i).0 };
        }
    }

    /// Mark the page as needed only because of the NX huge page workaround
    /// (`crate::pages`); before it is linked, so without the pages lock.
    pub(crate) fn set_nx_huge_page_disallowed(&mut self, value: bool) {
        // SAFETY: ours, unpublished (type invariant).
        unsafe { (*self.ptr.as_ptr()).nx_huge_page_disallowed = value };
    }

    /// The page was linked into the tree that `_walk` is on: from now on
    /// the tree keeps it alive, at least until the walk's RCU section ends.
    /// (Published but not linked, it leaks, still allocated.)
    pub(crate) fn publish_in<'w>(self, _walk: &'w super::Cursor) -> Sp<'w> {
        let ptr = self.publish();
        // SAFETY: linked tables are freed only a grace period after they
        // are removed, which cannot end while the walk's section is held.
        unsafe { Sp::from_raw(ptr.as_ptr()) }
    }

    /// The non-leaf SPTE that links the table, for the exchange that
    /// publishes it.
    pub(crate) fn nonleaf_spte(&self) -> Spte {
        // SAFETY: the page has its table (type invariant).
        super::make_spte::make_nonleaf_spte(unsafe { table_of(self.ptr) })
    }

    /// The table is linked into the tree: no longer this value's to free.
    /// Returns the page, which the tree keeps alive from now on.
    pub(super) fn publish(self) -> NonNull<bindings::kvm_mmu_page> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }
}

impl Drop for NewSp {
    fn drop(&mut self) {
        // SAFETY: ours and never linked (type invariant); its external page,
        // if it was given one, is freed with it.
        unsafe { bindings::kvm_tdp_mmu_provider_free_unused_sp(self.ptr.as_ptr()) };
        TABLES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A page-table page unlinked from the tree: by the exchange that replaced
/// the SPTE linking it ([`super::Replaced`]) or, for a root, by its last
/// reference. Lockless walkers that reached it before may still read it,
/// so its only way out is [`RemovedSp::free_after_grace_period`].
///
/// # Invariants
///
/// Owns `ptr`, a TDP MMU kvm_mmu_page that nothing links any more.
#[must_use = "a removed table is freed after a grace period, or leaks"]
pub(crate) struct RemovedSp {
    ptr: NonNull<bindings::kvm_mmu_page>,
}

impl RemovedSp {
    /// # Safety
    ///
    /// `ptr` is a TDP MMU page that nothing links any more, and nobody but
    /// the caller knows it was unlinked.
    pub(super) unsafe fn from_raw(ptr: NonNull<bindings::kvm_mmu_page>) -> Self {
        // INVARIANT: the caller's guarantee.
        RemovedSp { ptr }
    }

    /// # Safety
    ///
    /// As for [`RemovedSp::from_raw`], for the page whose table is `table`.
    pub(super) unsafe fn of_table(table: NonNull<u64>) -> Self {
        // SAFETY: a TDP MMU table, not freed before this value is.
        let sp = unsafe { Sp::of_table(table) };
        // SAFETY: the caller's guarantee.
        unsafe { RemovedSp::from_raw(sp.ptr) }
    }

    /// The header, for the teardown.
    pub(crate) fn sp(&self) -> Sp<'_> {
        // SAFETY: ours until freed.
        unsafe { Sp::from_raw(self.ptr.as_ptr()) }
    }

    /// Hand the page to the VM's deferred freeing: it is freed after an RCU
    /// grace period.
    pub(crate) fn free_after_grace_period(self, kvm: &Kvm) {
        let ptr = self.ptr;
        core::mem::forget(self);
        kvm.state().reclaim.queue(ptr);
    }
}

impl Drop for RemovedSp {
    /// Only reached when a removal is abandoned, which the TDP MMU never
    /// does: the page cannot be freed without a grace period, so it leaks,
    /// loudly, and `kvm_rtdp/tables` shows it.
    fn drop(&mut self) {
        kernel::warn_on!(true);
    }
}
