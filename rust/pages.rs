// SPDX-License-Identifier: GPL-2.0

//! Page-table pages: their accounting and the possible-NX-huge-page list.
//!
//! A page table that replaced a huge page only because of the NX huge page
//! workaround is on the VM's possible-NX-huge-page list, from which the
//! recovery worker zaps it to let the huge page come back.
//!
//! # Invariants
//!
//! - A page-table page is accounted (`NR_SECONDARY_PAGETABLE`) exactly while
//!   it is linked into a tree: [`linked`] after its parent SPTE points to it,
//!   [`unlinked`] when the table is removed.
//! - The possible-NX-huge-page list and every page's
//!   `nx_huge_page_disallowed` flag, once the page is linked, change only
//!   under `tdp_mmu_pages_lock` ([`Kvm::lock_pages`]): several faults holding
//!   `mmu_lock` for read link tables at once, and the list is shared with
//!   kvm.ko's NX recovery. A page is on the list only while its flag is set.

use crate::kvm::{Kvm, Sp};
use crate::level::Level;

/// `sp` was just linked into the tree by a fault that needed `sp` to map
/// below `level` because of the NX huge page workaround; `req_level` is the
/// level the host would have allowed.
pub(crate) fn linked(kvm: &Kvm, sp: Sp<'_>, nx_disallowed: bool, req_level: Level, level: Level) {
    sp.account(kvm, true);
    if nx_disallowed && req_level >= level {
        let pages = kvm.lock_pages();
        // A racing zap may have removed the table already and cleared the
        // flag (see `unlinked`); then it must not go on the list.
        if sp.nx_huge_page_disallowed(&pages) {
            pages.track_possible_nx_huge_page(sp);
        }
    }
}

/// `sp`'s table was removed from the tree.
pub(crate) fn unlinked(kvm: &Kvm, sp: Sp<'_>) {
    sp.account(kvm, false);
    // Most tables were never on the list: no lock for them.
    if !sp.may_be_nx_huge_page_disallowed() {
        return;
    }
    // kvm.ko's NX recovery (under mmu_lock for read, as this zap may be)
    // may have taken the page off the list since: untracking is then a
    // no-op (`list_del_init()` and a `list_empty()` check).
    let pages = kvm.lock_pages();
    sp.set_nx_huge_page_disallowed(&pages, false);
    pages.untrack_possible_nx_huge_page(sp);
}
