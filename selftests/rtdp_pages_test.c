// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_pages_test: the TDP MMU accounts its page-table pages while they are
 * linked, and only then (SecPageTables in /proc/meminfo).
 *
 * A guest touches every 4 KiB page of a 64 MiB memslot, which takes at least
 * 32 last-level tables; SecPageTables must grow by at least that.  Deleting
 * a memslot zaps every root (KVM_X86_QUIRK_SLOT_ZAP_ALL, on by default) before
 * the ioctl returns, and roots themselves are not accounted, so SecPageTables
 * must then be back where it started; so must it after the VM is destroyed.
 *
 * On kvm_rtdp, whose kvm_rtdp/rcu debugfs file counts the page tables waiting
 * for a grace period, the zap must have queued at least those 32 tables (the
 * peak), and none may be left waiting once the VM is gone.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	(4ULL << 30)
#define TEST_SIZE	(64ULL << 20)
#define MIN_TABLES	(TEST_SIZE / (2ULL << 20))	/* one per 2 MiB */

/*
 * kvm_rtdp/rcu's "pending" and "peak" in the Rust column; false in the C
 * column, where kvm_rtdp is not loaded.
 */
static bool rtdp_rcu(long *pending, long *peak)
{
	FILE *f = fopen("/sys/kernel/debug/kvm_rtdp/rcu", "r");
	int n;

	TEST_ASSERT(!!f == rtdp_rust_column(), "%s column, but kvm_rtdp/rcu is %s",
		    rtdp_rust_column() ? "Rust" : "C", f ? "there" : "missing");
	if (!f)
		return false;
	n = fscanf(f, "pending %ld peak %ld", pending, peak);
	fclose(f);
	TEST_ASSERT(n == 2, "parsing kvm_rtdp/rcu");
	return true;
}

static void guest_code(void)
{
	u64 gpa;

	for (gpa = TEST_GPA; gpa < TEST_GPA + TEST_SIZE; gpa += PAGE_SIZE)
		WRITE_ONCE(*(u64 *)gpa, gpa);
	GUEST_SYNC(1);
	/* After the memslot is gone: touch nothing but the default slot. */
	GUEST_DONE();
}

int main(void)
{
	long base, filled, zapped, freed, pending, peak;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	base = rtdp_sec_page_tables_kb();
	__TEST_REQUIRE(base >= 0, "no SecPageTables in /proc/meminfo");

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_SIZE / getpagesize(), 0);
	virt_map(vm, TEST_GPA, TEST_GPA, TEST_SIZE / getpagesize());

	rtdp_expect_ucall(vcpu, UCALL_SYNC);
	filled = rtdp_sec_page_tables_kb();
	printf("SecPageTables: %ld kB before, %ld kB with 64 MiB mapped in 4 KiB pages\n",
	       base, filled);
	TEST_ASSERT(filled - base >= (long)MIN_TABLES * 4,
		    "SecPageTables grew by %ld kB, want at least %llu kB (%llu tables)",
		    filled - base, MIN_TABLES * 4, MIN_TABLES);

	vm_mem_region_delete(vm, TEST_SLOT);
	zapped = rtdp_sec_page_tables_kb();
	printf("SecPageTables: %ld kB after the memslot was deleted\n", zapped);
	TEST_ASSERT(zapped == base,
		    "SecPageTables %ld kB after every root was zapped, %ld kB before the VM",
		    zapped, base);
	if (rtdp_rcu(&pending, &peak)) {
		printf("kvm_rtdp: %ld page tables waiting for a grace period, peak %ld\n",
		       pending, peak);
		TEST_ASSERT(peak >= (long)MIN_TABLES,
			    "the zap queued at most %ld tables for RCU, want at least %llu",
			    peak, MIN_TABLES);
	}
	rtdp_expect_ucall(vcpu, UCALL_DONE);

	kvm_vm_free(vm);
	if (rtdp_rcu(&pending, &peak)) {
		printf("kvm_rtdp: %ld page tables waiting after the VM was destroyed\n",
		       pending);
		TEST_ASSERT(pending == 0, "%ld page tables still queued for RCU", pending);
	}
	freed = rtdp_sec_page_tables_kb();
	printf("SecPageTables: %ld kB after the VM was destroyed\n", freed);
	TEST_ASSERT(freed == base, "SecPageTables %ld kB after the VM, %ld kB before",
		    freed, base);
	return 0;
}
