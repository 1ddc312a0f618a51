// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_disjoint_invalidation_test: page faults between two unrelated MMU
 * notifier invalidations should not retry.
 *
 * One memslot holds three regions, B | A | C.  Two host threads keep
 * invalidating B and C (madvise(MADV_DONTNEED)) while the guest faults in
 * every page of A, several times over (the host drops A between passes).
 * Upstream KVM widens its one invalidation range to the union of B and C,
 * which covers A, and retries every fault whose lookup overlapped the end of
 * any invalidation; kvm_rtdp tracks B and C apart.
 *
 * Retries are counted the same way on both MMUs, from the vCPU's stats:
 * page faults taken that were neither fixed, spurious nor emulated.  The run
 * on the C TDP MMU (kvm.tdp_mmu_provider=none) leaves its count in
 * RESULT_FILE; the run on kvm_rtdp reads it and must retry at least 90% less.
 * Either way the guest must read back what it wrote.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	(4ULL << 30)
#define REGION		(32ULL << 20)
#define A_GPA		(TEST_GPA + REGION)
#define PASSES		4
#define RESULT_FILE	"/tmp/rtdp_disjoint_invalidation.c"

static void guest_code(u64 pass)
{
	u64 gpa;

	for (;;) {
		for (gpa = A_GPA; gpa < A_GPA + REGION; gpa += PAGE_SIZE)
			WRITE_ONCE(*(u64 *)gpa, gpa ^ pass);
		for (gpa = A_GPA; gpa < A_GPA + REGION; gpa += PAGE_SIZE)
			GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)gpa), gpa ^ pass);
		GUEST_SYNC(pass);
		pass++;
	}
}

static atomic_bool stop;
static atomic_ulong invalidations;

static void *invalidator(void *hva)
{
	while (!atomic_load(&stop)) {
		TEST_ASSERT(!madvise(hva, REGION, MADV_DONTNEED), "madvise");
		atomic_fetch_add(&invalidations, 1);
	}
	return NULL;
}

static bool on_rtdp(void)
{
	__TEST_REQUIRE(!access("/sys/module/kvm/parameters/tdp_mmu_provider", F_OK),
		       "kvm.ko has no TDP MMU provider interface");
	return rtdp_rust_column();
}

static u64 retries(struct kvm_vcpu *vcpu)
{
	return vcpu_get_stat(vcpu, pf_taken) - vcpu_get_stat(vcpu, pf_fixed) -
	       vcpu_get_stat(vcpu, pf_spurious) - vcpu_get_stat(vcpu, pf_emulate);
}

/*
 * One run: PASSES passes over A under the invalidation storm.  False if the
 * guest shut down (triple fault) instead of reaching its next ucall.
 */
static bool measure(bool rtdp, u64 *taken, u64 *retried)
{
	struct kvm_vcpu *vcpu;
	pthread_t threads[2];
	struct kvm_vm *vm;
	bool shutdown = false;
	struct ucall uc;
	char *hva;
	int pass;

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    3 * REGION / getpagesize(), 0);
	virt_map(vm, TEST_GPA, TEST_GPA, 3 * REGION / getpagesize());
	vcpu_args_set(vcpu, 1, 0);
	hva = addr_gpa2hva(vm, TEST_GPA);

	atomic_store(&stop, false);
	atomic_store(&invalidations, 0);
	pthread_create(&threads[0], NULL, invalidator, hva);
	pthread_create(&threads[1], NULL, invalidator, hva + 2 * REGION);
	for (pass = 0; pass < PASSES; pass++) {
		vcpu_run(vcpu);
		if (vcpu->run->exit_reason == KVM_EXIT_SHUTDOWN) {
			shutdown = true;
			break;
		}
		rtdp_check_ucall(vcpu, UCALL_SYNC, &uc);
		/* Drop A so that the next pass faults it in again. */
		TEST_ASSERT(!madvise(hva + REGION, REGION, MADV_DONTNEED), "madvise A");
	}
	atomic_store(&stop, true);
	pthread_join(threads[0], NULL);
	pthread_join(threads[1], NULL);

	*taken = vcpu_get_stat(vcpu, pf_taken);
	*retried = retries(vcpu);
	printf("%s: %d passes over %llu MiB, %lu invalidations of B and C: ",
	       rtdp ? "kvm_rtdp" : "C TDP MMU", pass, REGION >> 20,
	       atomic_load(&invalidations));
	printf("%lu faults taken, %lu retried%s\n", *taken, *retried,
	       shutdown ? "; the guest shut down" : "");
	kvm_vm_free(vm);
	return !shutdown;
}

int main(void)
{
	u64 taken, retried, c_taken, c_retried;
	bool rtdp;
	FILE *f;

	rtdp = on_rtdp();
	if (!rtdp) {
		/*
		 * On QEMU TCG the guest has been seen to triple-fault on the C
		 * TDP MMU under this storm (1 run in 4, never on kvm_rtdp): the
		 * baseline is measured once more then, and the run reported.
		 */
		if (!measure(false, &taken, &retried)) {
			printf("rtdp-report: disjoint, C: guest shut down, measuring again\n");
			TEST_ASSERT(measure(false, &taken, &retried),
				    "the guest shut down twice on the C TDP MMU");
		}
		printf("rtdp-report: disjoint, C TDP MMU: %lu of %lu faults retried\n",
		       retried, taken);
		f = fopen(RESULT_FILE, "w");
		TEST_ASSERT(f, "open %s", RESULT_FILE);
		fprintf(f, "%lu %lu\n", taken, retried);
		fclose(f);
		return 0;
	}

	TEST_ASSERT(measure(true, &taken, &retried), "the guest shut down on kvm_rtdp");
	f = fopen(RESULT_FILE, "r");
	__TEST_REQUIRE(f, "no result of the C TDP MMU in %s", RESULT_FILE);
	TEST_ASSERT(fscanf(f, "%lu %lu", &c_taken, &c_retried) == 2, "reading %s", RESULT_FILE);
	fclose(f);
	printf("rtdp-report: disjoint, kvm_rtdp: %lu of %lu faults retried (%.1f%% of C)\n",
	       retried, taken, c_retried ? 100.0 * retried / c_retried : 0.0);
	TEST_ASSERT(c_retried >= 100,
		    "the C TDP MMU retried only %lu times: the invalidations did not overlap the faults",
		    c_retried);
	TEST_ASSERT(retried * 10 <= c_retried,
		    "kvm_rtdp retried %lu times, more than 10%% of the C TDP MMU's %lu",
		    retried, c_retried);
	return 0;
}
