// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_mmio_gen_wrap_test: no stale MMIO SPTE validates after the memslot
 * generation wraps.
 *
 * An MMIO SPTE records 18 bits of the memslot generation, which grows by
 * the number of address spaces (1, or 2 with SMM) per memslot update, so
 * after 2^18 (2^17) updates a generation recorded before comes round
 * again.  kvm.ko
 * zaps every root when the recorded bits wrap to 0
 * (kvm_mmu_invalidate_mmio_sptes()), through the TDP MMU's entries, so an
 * MMIO SPTE made before the wrap is gone after it instead of validating.
 *
 * The guest reads one MMIO address per round.  The host counts the MMIO
 * SPTEs the MMU made (pf_mmio_spte_created): the first read makes one; a
 * read after one memslot update makes another (the first is stale, its
 * generation is not the current one); a read after 2^17 more updates,
 * when the generation bits are those of the second SPTE again, must make a
 * third: the second one was zapped at the wrap.  Had it survived, it would
 * validate and the count would stay.
 *
 * Usage: rtdp_mmio_gen_wrap_test [-n UPDATES]   (default: one period)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define MMIO_GPA	BIT_ULL(33)
#define TOGGLE_SLOT	10
#define TOGGLE_GPA	BIT_ULL(32)

static void guest_code(void)
{
	for (;;) {
		READ_ONCE(*(u64 *)MMIO_GPA);
		GUEST_SYNC(0);
	}
}

/* One guest round: a read of the MMIO address. Returns the SPTEs made. */
static u64 round_mmio_sptes(struct kvm_vcpu *vcpu)
{
	u64 before = vcpu_get_stat(vcpu, pf_mmio_spte_created);
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_MMIO &&
		    vcpu->run->mmio.phys_addr == MMIO_GPA,
		    "exit %s, want an MMIO read of %#llx", exit_reason_str(vcpu->run->exit_reason),
		    MMIO_GPA);
	memset(vcpu->run->mmio.data, 0, sizeof(vcpu->run->mmio.data));
	vcpu_run(vcpu);
	rtdp_check_ucall(vcpu, UCALL_SYNC, &uc);
	return vcpu_get_stat(vcpu, pf_mmio_spte_created) - before;
}

/*
 * @n memslot updates: dirty logging on and off on a one-page slot, each
 * call a change (setting the flags a slot has already is no update).
 */
static void update_memslots(struct kvm_vm *vm, unsigned long n)
{
	static bool logging;
	unsigned long i;

	for (i = 0; i < n; i++) {
		logging = !logging;
		vm_mem_region_set_flags(vm, TOGGLE_SLOT, logging ? KVM_MEM_LOG_DIRTY_PAGES : 0);
	}
}

int main(int argc, char *argv[])
{
	unsigned long n = 0, step;
	struct timespec t0, t1;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 made;
	int opt;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		switch (opt) {
		case 'n':
			n = strtoul(optarg, NULL, 0);
			break;
		default:
			printf("usage: %s [-n UPDATES]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_is_tdp_enabled());
	rtdp_rust_column();

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TOGGLE_GPA, TOGGLE_SLOT, 1, 0);
	virt_map(vm, MMIO_GPA, MMIO_GPA, 1);

	/* KVM_CAP_MULTI_ADDRESS_SPACE: reported only with more than one. */
	step = vm_check_cap(vm, KVM_CAP_MULTI_ADDRESS_SPACE) ?: 1;
	if (!n)
		n = (1UL << 18) / step;
	printf("rtdp-report: memslot generation step %lu: %lu updates to come round\n", step, n);

	made = round_mmio_sptes(vcpu);
	TEST_ASSERT(made == 1, "the first read made %lu MMIO SPTEs, want 1", made);

	update_memslots(vm, 1);
	made = round_mmio_sptes(vcpu);
	printf("rtdp-report: after 1 memslot update: %lu new MMIO SPTE\n", made);
	TEST_ASSERT(made == 1, "a stale MMIO SPTE validated: %lu made after an update", made);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	update_memslots(vm, n);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	made = round_mmio_sptes(vcpu);
	printf("rtdp-report: after %lu more updates (%.1f s): %lu new MMIO SPTE\n", n,
	       t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9, made);
	TEST_ASSERT(made == 1, "an MMIO SPTE made before the wrap validated after it (%lu made)",
		    made);

	kvm_vm_free(vm);
	printf("rtdp_mmio_gen_wrap_test: PASS\n");
	return 0;
}
