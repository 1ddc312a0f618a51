// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_mmio_private_test: a gfn that was emulated MMIO while it had no
 * memslot, then turned private, is private memory again once its memslot
 * is back.
 *
 * A software-protected VM (KVM_X86_SW_PROTECTED_VM) with one vCPU and one
 * guest_memfd memslot of PAGES pages; the guest writes and reads back its
 * first page, then syncs, in a loop:
 *   1. shared: the pass completes;
 *   2. the memslot deleted: the write exits as MMIO (and leaves an MMIO
 *      SPTE, when kvm.ko caches MMIO), twice;
 *   3. the gfns made private (no memslot: nothing to zap), the memslot
 *      added back (a new memslot generation: the MMIO SPTE is stale);
 *   4. the pass must complete on private memory.  A fault on the stale MMIO
 *      SPTE sets the reserved bit in the error code; if kvm.ko then takes
 *      the access as shared, KVM_RUN fails with KVM_EXIT_MEMORY_FAULT,
 *      flags 0 (shared), and does again on every retry: the SPTE is never
 *      replaced, the guest never runs.
 * Both columns: the fault is handled by mmu.c before either TDP MMU sees
 * it, so C and Rust must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define SLOT		10
#define GPA		BIT_ULL(32)
#define PAGES		16
#define RETRIES		3
#define MMIO_CACHING	"/sys/module/kvm/parameters/mmio_caching"

static void guest_code(void)
{
	u64 n;

	for (n = 1;; n++) {
		WRITE_ONCE(*(u64 *)GPA, n);
		/* A write emulated as MMIO to no memory reads back nothing. */
		GUEST_SYNC(READ_ONCE(*(u64 *)GPA) == n);
	}
}

/* Run @vcpu to its next sync: the number of MMIO exits on the way. */
static int run_to_sync(struct kvm_vcpu *vcpu, bool *stored)
{
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int mmio = 0;

	for (;;) {
		vcpu_run(vcpu);
		if (run->exit_reason != KVM_EXIT_MMIO)
			break;
		TEST_ASSERT(run->mmio.phys_addr == GPA, "MMIO exit at %#llx, want %#llx",
			    run->mmio.phys_addr, GPA);
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		mmio++;
	}
	rtdp_check_ucall(vcpu, UCALL_SYNC, &uc);
	*stored = uc.args[1];
	return mmio;
}

static void set_slot(struct kvm_vm *vm, const struct kvm_userspace_memory_region2 *r, bool add)
{
	TEST_ASSERT(!__vm_set_user_memory_region2(vm, SLOT, r->flags, r->guest_phys_addr,
						  add ? r->memory_size : 0,
						  (void *)(uintptr_t)r->userspace_addr,
						  r->guest_memfd, r->guest_memfd_offset),
		    "%s memslot %d: %s", add ? "add" : "delete", SLOT, strerror(errno));
}

int main(int argc, char *argv[])
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct kvm_userspace_memory_region2 region;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	char dir[256], caching[8];
	int memfd, mmio, i, r;
	bool stored;

	if (argc > 1) {
		fprintf(stderr, "usage: %s\n", argv[0]);
		exit(1);
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));
	rtdp_read_line(MMIO_CACHING, caching, sizeof(caching));
	TEST_REQUIRE(caching[0] == 'Y');

	vm = __vm_create_with_vcpus(shape, 1, PAGES, guest_code, &vcpu);
	rtdp_vm_column(dir, sizeof(dir));
	memfd = vm_create_guest_memfd(vm, PAGES * PAGE_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA, SLOT, PAGES, KVM_MEM_GUEST_MEMFD, memfd, 0);
	region = memslot2region(vm, SLOT)->region;
	virt_map(vm, GPA, GPA, PAGES);

	/* 1. Shared memory. */
	mmio = run_to_sync(vcpu, &stored);
	TEST_ASSERT(!mmio && stored, "shared: %d MMIO exits, stored %d", mmio, stored);

	/* 2. No memslot: emulated MMIO, the second time through the MMIO SPTE. */
	set_slot(vm, &region, false);
	for (i = 0; i < 2; i++) {
		mmio = run_to_sync(vcpu, &stored);
		TEST_ASSERT(mmio == 2 && !stored,
			    "no memslot, pass %d: %d MMIO exits (want a write and a read), stored %d",
			    i, mmio, stored);
	}

	/* 3. Private, and the memslot back. */
	vm_mem_set_private(vm, GPA, PAGES * PAGE_SIZE);
	set_slot(vm, &region, true);

	/* 4. Private memory. */
	for (i = 0; i < RETRIES; i++) {
		r = __vcpu_run(vcpu);
		if (!r || errno != EFAULT || vcpu->run->exit_reason != KVM_EXIT_MEMORY_FAULT)
			break;
		pr_info("KVM_RUN %d: KVM_EXIT_MEMORY_FAULT at %#llx, flags %#llx\n",
			i, vcpu->run->memory_fault.gpa, vcpu->run->memory_fault.flags);
	}
	TEST_ASSERT(i == 0,
		    "private after the memslot came back: KVM_RUN failed with KVM_EXIT_MEMORY_FAULT %d times in a row (gpa %#llx, flags %#llx: %s); the fault on the stale MMIO SPTE was taken as a shared access",
		    i, vcpu->run->memory_fault.gpa, vcpu->run->memory_fault.flags,
		    vcpu->run->memory_fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE ?
		    "private" : "shared");
	TEST_ASSERT(!r, "KVM_RUN: %s", strerror(errno));
	TEST_ASSERT(vcpu->run->exit_reason != KVM_EXIT_MMIO,
		    "private after the memslot came back: MMIO exit at %#llx",
		    vcpu->run->mmio.phys_addr);
	rtdp_check_ucall(vcpu, UCALL_SYNC, &uc);
	TEST_ASSERT(uc.args[1], "private: the write did not read back");
	mmio = run_to_sync(vcpu, &stored);
	TEST_ASSERT(!mmio && stored, "private, next pass: %d MMIO exits, stored %d", mmio,
		    stored);
	printf("rtdp-report: the gfn was MMIO without its memslot, then private memory\n");
	kvm_vm_free(vm);
	return 0;
}
