// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_frozen_retry_test: faults that meet a table being removed under the
 * read lock back off, because the removal froze it.
 *
 * kvm_rtdp removes a page table under mmu_lock held for read by freezing
 * the SPTE that links it first: for as long as the table's 512 entries are
 * torn down, the link reads FROZEN_SPTE, and a fault that walks to it must
 * retry (counted as retries_frozen in kvm_rtdp/<vm>/stats) instead of
 * building under a table that is going away.
 *
 * Two vCPUs keep writing every page of a 64 MiB hugetlb-backed memslot
 * while the host turns dirty logging on (the huge pages are split into
 * tables of 4 KiB SPTEs) and off (the tables are replaced by huge pages
 * again, under the read lock) in a loop.  The vCPUs write across all the
 * 2 MiB regions in turn, each write to another page, so they keep walking
 * the tables and faulting while the tables are replaced.  In the kvm_rtdp column at least one fault
 * must have found a frozen SPTE within the rounds; the C column runs the
 * same workload and reports (its counters are not kvm_rtdp's).
 *
 * Usage: rtdp_frozen_retry_test [-r ROUNDS]  (default 2000, at most 50
 * in the C column; stops early once 10 frozen retries were seen).  Needs
 * 32 free 2 MiB hugetlb pages (run it through rtdp_hugetlb.sh 32).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define SLOT		10
#define GPA		BIT_ULL(32)
#define PAGES		16384	/* 64 MiB */
#define NR_VCPUS	2
#define ENOUGH		10
#define C_ROUNDS	50

static bool stop;

/*
 * Write one page of each 2 MiB region of [@first, @first + @n) (in pages)
 * in turn, the next page of each after that: consecutive writes miss the
 * TLB and walk the tables, and every region is written to again within a
 * few dozen writes, so a region whose link is frozen is soon walked.
 */
static void guest_code(u64 first, u64 n)
{
	u64 i, r;

	for (;;) {
		for (i = 0; i < 512; i++)
			for (r = first; r < first + n; r += 512)
				WRITE_ONCE(*(u64 *)(GPA + (r + i) * PAGE_SIZE), i);
		if (READ_ONCE(stop))
			GUEST_DONE();
	}
}

static void *run_vcpu(void *arg)
{
	rtdp_expect_ucall(arg, UCALL_DONE);
	return NULL;
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpus[NR_VCPUS];
	pthread_t threads[NR_VCPUS];
	long rounds = 2000, round, frozen = 0;
	char dir[256];
	struct kvm_vm *vm;
	bool rust;
	int opt, i;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		switch (opt) {
		case 'r':
			rounds = atol(optarg);
			break;
		default:
			printf("usage: %s [-r ROUNDS]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_is_tdp_enabled());

	vm = vm_create_with_vcpus(NR_VCPUS, guest_code, vcpus);
	rust = rtdp_vm_column(dir, sizeof(dir));
	/* Nothing is counted on C, which would run every round (238 s, KASAN). */
	if (!rust && rounds > C_ROUNDS)
		rounds = C_ROUNDS;
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, GPA, SLOT, PAGES, 0);
	virt_map(vm, GPA, GPA, PAGES);
	for (i = 0; i < NR_VCPUS; i++) {
		vcpu_args_set(vcpus[i], 2, i * PAGES / NR_VCPUS, PAGES / NR_VCPUS);
		pthread_create(&threads[i], NULL, run_vcpu, vcpus[i]);
	}

	for (round = 0; round < rounds && frozen < ENOUGH; round++) {
		vm_mem_region_set_flags(vm, SLOT, KVM_MEM_LOG_DIRTY_PAGES);
		vm_mem_region_set_flags(vm, SLOT, 0);
		if (rust)
			frozen = rtdp_debugfs_value(dir, "stats", "retries_frozen");
	}

	stop = true;
	sync_global_to_guest(vm, stop);
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(threads[i], NULL);

	if (!rust) {
		printf("rtdp-report: C column: %ld rounds of split and recovery under faults\n",
		       round);
		kvm_vm_free(vm);
		return 0;
	}
	printf("rtdp-report: kvm_rtdp: %ld frozen retries in %ld rounds (%ld recovered)\n",
	       frozen, round, rtdp_debugfs_value(dir, "stats", "huge_pages_recovered"));
	TEST_ASSERT(frozen > 0,
		    "no fault met a frozen SPTE in %ld rounds: removal under the read lock does not freeze",
		    round);
	kvm_vm_free(vm);
	return 0;
}
