// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_stats_test: kvm.ko's VM and vCPU statistics that the TDP MMU feeds
 * count the same events on both MMUs.
 *
 * One deterministic workload (one vCPU): the guest writes every page of a
 * 4K-backed memslot, reads an MMIO address twice (the second access goes
 * through the MMIO SPTE the first one made), writes every page again
 * under dirty logging (write-protected: fast page faults), and reads the
 * pages again after the host dropped half of them (MADV_DONTNEED: an MMU
 * notifier zap). The MMU statistics, read through the binary stats fds,
 * are then saved (C TDP MMU, the plan's first column) or compared with
 * what the C column saved (kvm_rtdp, the second): every one must be equal.
 *
 * Usage: rtdp_stats_test [-f FILE]   (default /tmp/rtdp_stats_test.c)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_GVA	TEST_GPA
#define TEST_PAGES	256
#define MMIO_GPA	(TEST_GPA + BIT_ULL(30))
#define MMIO_GVA	MMIO_GPA

static void guest_code(void)
{
	u64 i;

	for (i = 0; i < TEST_PAGES; i++)
		WRITE_ONCE(*(u64 *)(TEST_GVA + i * PAGE_SIZE), i);
	GUEST_SYNC(1);

	READ_ONCE(*(u64 *)MMIO_GVA);
	READ_ONCE(*(u64 *)MMIO_GVA);
	GUEST_SYNC(2);

	for (i = 0; i < TEST_PAGES; i++)
		WRITE_ONCE(*(u64 *)(TEST_GVA + i * PAGE_SIZE), i + 1);
	GUEST_SYNC(3);

	for (i = 0; i < TEST_PAGES; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(TEST_GVA + i * PAGE_SIZE)),
				i < TEST_PAGES / 2 ? 0 : i + 1);
	GUEST_DONE();
}

/* Run @vcpu to ucall @want, answering MMIO exits; how many there were. */
static int run_to(struct kvm_vcpu *vcpu, u64 want)
{
	return rtdp_run_answering_mmio(vcpu, want, MMIO_GPA, 8);
}

/* The statistics compared: those the TDP MMU feeds. */
static const char *const vm_stats[] = {
	"pages_4k", "pages_2m", "pages_1g", "nx_lpage_splits",
};

static const char *const vcpu_stats[] = {
	"pf_taken", "pf_fixed", "pf_emulate", "pf_spurious", "pf_fast",
	"pf_mmio_spte_created", "mmio_exits",
};

#define NR_STATS (ARRAY_SIZE(vm_stats) + ARRAY_SIZE(vcpu_stats))

int main(int argc, char *argv[])
{
	const char *file = rtdp_saved_file(argc, argv, "/tmp/rtdp_stats_test.c");
	u64 got[NR_STATS], want[NR_STATS];
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int mmio, diff = 0;
	unsigned int i;
	bool rust;
	char *hva;

	TEST_REQUIRE(kvm_is_tdp_enabled());
	rust = rtdp_rust_column();

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_PAGES, 0);
	virt_map(vm, TEST_GVA, TEST_GPA, TEST_PAGES);
	virt_map(vm, MMIO_GVA, MMIO_GPA, 1);
	hva = addr_gpa2hva(vm, TEST_GPA);

	TEST_ASSERT_EQ(run_to(vcpu, UCALL_SYNC), 0);
	mmio = run_to(vcpu, UCALL_SYNC);
	TEST_ASSERT(mmio == 2, "%d MMIO exits for two MMIO reads", mmio);

	vm_mem_region_set_flags(vm, TEST_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	TEST_ASSERT_EQ(run_to(vcpu, UCALL_SYNC), 0);
	vm_mem_region_set_flags(vm, TEST_SLOT, 0);

	TEST_ASSERT(!madvise(hva, TEST_PAGES / 2 * getpagesize(), MADV_DONTNEED),
		    "MADV_DONTNEED");
	TEST_ASSERT_EQ(run_to(vcpu, UCALL_DONE), 0);

	for (i = 0; i < ARRAY_SIZE(vm_stats); i++)
		kvm_get_stat(&vm->stats, vm_stats[i], &got[i], 1);
	for (i = 0; i < ARRAY_SIZE(vcpu_stats); i++)
		kvm_get_stat(&vcpu->stats, vcpu_stats[i], &got[ARRAY_SIZE(vm_stats) + i], 1);
	kvm_vm_free(vm);

	if (!rust) {
		FILE *f = fopen(file, "w");

		TEST_ASSERT(f, "writing %s", file);
		for (i = 0; i < NR_STATS; i++)
			fprintf(f, "%lu\n", got[i]);
		fclose(f);
		printf("rtdp_stats_test: saved for the kvm_rtdp column in %s\n", file);
		return 0;
	}

	{
		FILE *f = fopen(file, "r");

		TEST_ASSERT(f, "%s: no C column to compare with (run the C column first)",
			    file);
		for (i = 0; i < NR_STATS; i++)
			TEST_ASSERT(fscanf(f, "%lu", &want[i]) == 1, "reading %s", file);
		fclose(f);
	}
	for (i = 0; i < NR_STATS; i++) {
		const char *name = i < ARRAY_SIZE(vm_stats) ? vm_stats[i] :
				   vcpu_stats[i - ARRAY_SIZE(vm_stats)];

		printf("rtdp-report: stats %-22s C %6lu  kvm_rtdp %6lu%s\n", name,
		       want[i], got[i], want[i] == got[i] ? "" : "  DIFFERENT");
		diff += want[i] != got[i];
	}
	TEST_ASSERT(!diff, "%d of %lu statistics differ from the C TDP MMU's", diff,
		    NR_STATS);
	printf("rtdp_stats_test: PASS (%lu statistics equal)\n", NR_STATS);
	return 0;
}
