// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_private_freeze_test: private memory of a software-protected VM goes
 * through the freeze -> external page table -> final value protocol, and
 * the external table always equals the mirrored leaves.
 *
 * With kvm_rtdp_sw_external loaded (a software external page table that
 * refuses every busy_every-th install as busy and every fail_every-th as
 * failed), a KVM_X86_SW_PROTECTED_VM VM bound to kvm_rtdp mirrors its
 * private leaves: each change is made with the SPTE frozen, told to the
 * external table, then stored, or undone if the table refused.
 *
 * Two vCPUs write every page of 8 MiB of guest_memfd memory in two
 * memslots (7 MiB and 1 MiB), private at first, while the host converts
 * random ranges between private and shared (KVM_SET_MEMORY_ATTRIBUTES),
 * punches holes in the guest_memfd, and deletes the 1 MiB memslot and adds
 * it back (a vCPU that faults on it meanwhile exits to the host, which
 * runs it again):
 *   1. in lock step: after every vCPU pass and every host operation, the
 *      VM's page tables (kvm.ko's tdp_mmu_dump) and the external table
 *      (kvm_rtdp_sw_external/leaves) hold the same private leaves (every
 *      bit but the CPU's Accessed and Dirty), and no SPTE is frozen;
 *   2. concurrently, for -r ROUNDS host operations, then the same check;
 *   3. the memslots deleted: no leaf left in either.
 * Then the VM is destroyed: the external table saw no change that did not
 * start from the value the last one left, and nothing was left in it. The
 * refused installs were undone and retried (external_busy and
 * external_failed in kvm_rtdp/<vm>/stats, retries_frozen nonzero).
 *
 * Usage: rtdp_private_freeze_test [-r ROUNDS] [-b BUSY_EVERY] [-f FAIL_EVERY]
 * Rust column only: the C TDP MMU has no external table for such VMs.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define SLOT		10
#define SLOT_B		11
#define GPA		BIT_ULL(32)
#define PAGES		2048	/* 8 MiB, all private */
#define PAGES_B		256	/* the last 1 MiB of it, memslot SLOT_B */
#define NR_VCPUS	2
#define SPTE_PRESENT	BIT_ULL(11)
#define SPTE_MIRRORED	BIT_ULL(56)
#define SPTE_FROZEN	(BIT_ULL(63) | 0x1a0)
/* The CPU sets these in the mirror (NPT); the external table never sees them. */
#define SPTE_AD		(BIT_ULL(5) | BIT_ULL(6))
#define SWX		"/sys/kernel/debug/kvm_rtdp_sw_external"
#define SWX_KO		"/lib/modules/kvm_rtdp_sw_external.ko"

static bool stop;
/* SLOT_B as added, to add it back after a deletion. */
static struct kvm_userspace_memory_region2 slot_b;
static bool slot_b_deleted;
static int slot_b_deletions;
static u64 rng = 88172645463325252ull;

static u64 next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Write every page of [@first, @first + @n) (in pages), then sync. */
static void guest_code(u64 first, u64 n)
{
	u64 i;

	for (;;) {
		for (i = first; i < first + n; i++)
			WRITE_ONCE(*(u64 *)(GPA + i * PAGE_SIZE), i);
		GUEST_SYNC(0);
	}
}

/*
 * Run @vcpu to its next UCALL_SYNC.  A fault whose private/shared view
 * changed under it, or on a private page of a deleted memslot, exits with
 * KVM_EXIT_MEMORY_FAULT; a write to a shared page of a deleted memslot is
 * emulated MMIO: run again (the write is dropped).
 */
static void run_to_sync(struct kvm_vcpu *vcpu)
{
	time_t start = time(NULL);
	struct ucall uc;

	for (;;) {
		int r = __vcpu_run(vcpu);
		struct kvm_run *run = vcpu->run;

		/* A pass takes well under a second; no exit may repeat for long. */
		TEST_ASSERT(time(NULL) - start < 30,
			    "vCPU %u stuck: exit %u, fault gpa %llx flags %llx, MMIO gpa %llx",
			    vcpu->id, run->exit_reason, run->memory_fault.gpa,
			    run->memory_fault.flags, run->mmio.phys_addr);
		if (r && errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT)
			continue;
		TEST_ASSERT(!r, "KVM_RUN: %s", strerror(errno));
		if (run->exit_reason == KVM_EXIT_MMIO)
			continue;
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			return;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;

	while (!READ_ONCE(stop))
		run_to_sync(vcpu);
	return NULL;
}

/*
 * Delete SLOT_B, private all of it, or add it back as it was.
 *
 * Its pages stay private while it is deleted: a vCPU's write to a shared
 * page without a memslot leaves an MMIO SPTE, which neither MMU zaps when
 * the page turns private; once the memslot is back, the access faults on
 * it as reserved, so as shared, and exits as a private/shared mismatch,
 * again and again (KVM_EXIT_MEMORY_FAULT, flags 0), on both TDP MMUs until
 * patch 0018 (rtdp_mmio_private_test).
 */
static void toggle_slot_b(struct kvm_vm *vm)
{
	u64 size = slot_b_deleted ? slot_b.memory_size : 0;

	if (!size)
		vm_mem_set_private(vm, slot_b.guest_phys_addr, slot_b.memory_size);
	TEST_ASSERT(!__vm_set_user_memory_region2(vm, SLOT_B, slot_b.flags,
						  slot_b.guest_phys_addr, size,
						  (void *)(uintptr_t)slot_b.userspace_addr,
						  slot_b.guest_memfd,
						  slot_b.guest_memfd_offset),
		    "%s memslot %d: %s", size ? "add" : "delete", SLOT_B, strerror(errno));
	slot_b_deleted = !size;
	slot_b_deletions += slot_b_deleted;
}

/*
 * One random host operation on the memory: a conversion, a hole, or (one
 * in 16) the deletion of SLOT_B or its return.  While SLOT_B is deleted,
 * the others stay below it.
 */
static void host_op(struct kvm_vm *vm)
{
	u64 end = slot_b_deleted ? PAGES - PAGES_B : PAGES;
	u64 first = next_random() % end;
	u64 n = 1 + next_random() % 64;
	u64 op = next_random() % 16;

	if (first + n > end)
		n = end - first;
	if (op == 15)
		toggle_slot_b(vm);
	else if (op % 3 == 0)
		vm_mem_set_shared(vm, GPA + first * PAGE_SIZE, n * PAGE_SIZE);
	else if (op % 3 == 1)
		vm_mem_set_private(vm, GPA + first * PAGE_SIZE, n * PAGE_SIZE);
	else
		vm_guest_mem_fallocate(vm, GPA + first * PAGE_SIZE, n * PAGE_SIZE, true);
}

/*
 * The mirrored leaves of the VM's page tables, by page of the memslot, in
 * @mirror; fails on a frozen SPTE or a mirrored leaf that is not 4 KiB or
 * outside the memslot.  Returns how many there are.
 */
static int read_mirror(const char *dump, u64 *mirror)
{
	char line[128];
	int n = 0, as, level;
	u64 gfn, spte;
	FILE *f = fopen(dump, "r");

	TEST_ASSERT(f, "open %s", dump);
	memset(mirror, 0, PAGES * sizeof(*mirror));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%d %lx %d %lx", &as, &gfn, &level, &spte) != 4)
			continue;
		TEST_ASSERT(spte != SPTE_FROZEN, "SPTE of gfn %lx level %d left frozen", gfn,
			    level);
		if (!(spte & SPTE_PRESENT) || !(spte & SPTE_MIRRORED))
			continue;
		TEST_ASSERT(level == 1 && gfn >= GPA / PAGE_SIZE && gfn < GPA / PAGE_SIZE + PAGES,
			    "mirrored leaf at gfn %lx level %d, outside the private memslot", gfn,
			    level);
		mirror[gfn - GPA / PAGE_SIZE] = spte;
		n++;
	}
	fclose(f);
	return n;
}

/*
 * The external table's leaves of this process's VM, by page, in @ext;
 * whether the table has an entry for the VM at all.
 */
static bool read_external(u64 *ext)
{
	char line[128], want[64];
	bool in = false, found = false;
	u64 gfn, spte;
	FILE *f = fopen(SWX "/leaves", "r");

	TEST_ASSERT(f, "open " SWX "/leaves");
	snprintf(want, sizeof(want), "vm kvm-%d\n", getpid());
	memset(ext, 0, PAGES * sizeof(*ext));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "vm ", 3)) {
			in = !strcmp(line, want);
			found |= in;
			continue;
		}
		if (!in || sscanf(line, "%lx %lx", &gfn, &spte) != 2)
			continue;
		TEST_ASSERT(gfn >= GPA / PAGE_SIZE && gfn < GPA / PAGE_SIZE + PAGES,
			    "external leaf at gfn %lx, outside the private memslot", gfn);
		ext[gfn - GPA / PAGE_SIZE] = spte;
	}
	fclose(f);
	return found;
}

/*
 * The mirror and the external table compared in the kernel
 * (kvm_rtdp_sw_external/check), with the VM's mmu_lock held for write, so
 * that it can be done while the vCPUs run; fails on a difference or a
 * frozen SPTE, returns how many leaves the external table holds.
 */
static long kernel_check(const char *when)
{
	long leaves = -1, differences, frozen;
	char line[128], want[64];
	FILE *f = fopen(SWX "/check", "r");

	TEST_ASSERT(f, "open " SWX "/check");
	snprintf(want, sizeof(want), "vm kvm-%d", getpid());
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)) || line[strlen(want)] != ' ')
			continue;
		TEST_ASSERT(sscanf(line + strlen(want), " leaves %ld differences %ld frozen %ld",
				   &leaves, &differences, &frozen) == 3, "check: %s", line);
		TEST_ASSERT(!differences && !frozen,
			    "%s: the kernel's check found %ld differences, %ld frozen SPTEs",
			    when, differences, frozen);
	}
	fclose(f);
	TEST_ASSERT(leaves >= 0, "%s: the kernel's check does not know this VM", when);
	return leaves;
}

/*
 * The mirror and the external table agree, read by the test and by the
 * kernel's check, and hold nothing in SLOT_B while it is deleted; how many
 * leaves they hold.
 */
static int check(const char *dump, const char *when)
{
	static u64 mirror[PAGES], ext[PAGES];
	int n = read_mirror(dump, mirror), diffs = 0, i;

	read_external(ext);
	for (i = 0; i < PAGES; i++) {
		TEST_ASSERT(!slot_b_deleted || i < PAGES - PAGES_B || (!mirror[i] && !ext[i]),
			    "%s: page %d of deleted memslot %d: mirror %lx external %lx",
			    when, i, SLOT_B, mirror[i], ext[i]);
		if (!((mirror[i] ^ ext[i]) & ~SPTE_AD))
			continue;
		if (diffs++ < 5)
			pr_info("%s: gfn %lx mirror %lx external %lx\n", when,
				(unsigned long)(GPA / PAGE_SIZE + i), mirror[i], ext[i]);
	}
	TEST_ASSERT(!diffs, "%s: %d differences between the mirror and the external table",
		    when, diffs);
	TEST_ASSERT(kernel_check(when) == n, "%s: the kernel counts other leaves", when);
	return n;
}

static void load_sw_external(int busy_every, int fail_every)
{
	char params[64];
	int fd = open(SWX_KO, O_RDONLY);

	TEST_ASSERT(fd >= 0, "open %s", SWX_KO);
	snprintf(params, sizeof(params), "busy_every=%d fail_every=%d", busy_every, fail_every);
	/* Left loaded by a run that failed: its counts are not this run's. */
	if (!access(SWX, F_OK))
		TEST_ASSERT(!syscall(SYS_delete_module, "kvm_rtdp_sw_external", O_NONBLOCK),
			    "rmmod kvm_rtdp_sw_external: %s", strerror(errno));
	TEST_ASSERT(!syscall(SYS_finit_module, fd, params, 0),
		    "insmod kvm_rtdp_sw_external: %s", strerror(errno));
	close(fd);
}

static long swx_stat(const char *name)
{
	return rtdp_debugfs_value(SWX, "stats", name);
}

int main(int argc, char *argv[])
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	int rounds = 2000, busy_every = 5, fail_every = 7, opt, i, n, lock_step_deletions;
	struct kvm_vcpu *vcpus[NR_VCPUS];
	pthread_t threads[NR_VCPUS];
	char dir[256], dump[256];
	struct kvm_vm *vm;
	u64 ext[PAGES];
	int memfd;

	while ((opt = getopt(argc, argv, "r:b:f:")) != -1) {
		switch (opt) {
		case 'r':
			rounds = atoi_positive("rounds", optarg);
			break;
		case 'b':
			busy_every = atoi_positive("busy_every", optarg);
			break;
		case 'f':
			fail_every = atoi_positive("fail_every", optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-r rounds] [-b busy_every] [-f fail_every]\n",
				argv[0]);
			exit(1);
		}
	}
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));
	TEST_REQUIRE(rtdp_rust_column());

	load_sw_external(busy_every, fail_every);
	vm = __vm_create_with_vcpus(shape, NR_VCPUS, PAGES, guest_code, vcpus);
	TEST_ASSERT(rtdp_vm_column(dir, sizeof(dir)), "the VM is not on kvm_rtdp");
	snprintf(dump, sizeof(dump), "/sys/kernel/debug/kvm/%d-%d/tdp_mmu_dump", getpid(),
		 vm->fd);

	memfd = vm_create_guest_memfd(vm, PAGES * PAGE_SIZE, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA, SLOT, PAGES - PAGES_B, KVM_MEM_GUEST_MEMFD,
		   memfd, 0);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, GPA + (PAGES - PAGES_B) * PAGE_SIZE, SLOT_B, PAGES_B,
		   KVM_MEM_GUEST_MEMFD, memfd, (PAGES - PAGES_B) * PAGE_SIZE);
	slot_b = memslot2region(vm, SLOT_B)->region;
	virt_map(vm, GPA, GPA, PAGES);
	vm_mem_set_private(vm, GPA, PAGES * PAGE_SIZE);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_args_set(vcpus[i], 2, i * PAGES / NR_VCPUS, PAGES / NR_VCPUS);

	/* 1. Lock step, checked after every pass and every operation. */
	for (i = 0; i < NR_VCPUS; i++)
		run_to_sync(vcpus[i]);
	n = check(dump, "all private");
	TEST_ASSERT(n == PAGES, "%d of %d private pages mirrored", n, PAGES);
	for (i = 0; i < 200; i++) {
		char when[32];

		host_op(vm);
		snprintf(when, sizeof(when), "step %d, operation", i);
		check(dump, when);
		/* The vCPU pass would wait for SLOT_B forever. */
		if (slot_b_deleted) {
			toggle_slot_b(vm);
			snprintf(when, sizeof(when), "step %d, memslot added", i);
			check(dump, when);
		}
		run_to_sync(vcpus[i % NR_VCPUS]);
		snprintf(when, sizeof(when), "step %d, vCPU pass", i);
		check(dump, when);
	}
	pr_info("lock step: 200 operations (%d deletions of memslot %d), checked after each and after each vCPU pass\n",
		slot_b_deletions, SLOT_B);
	lock_step_deletions = slot_b_deletions;

	/* 2. The same operations while the vCPUs run. */
	for (i = 0; i < NR_VCPUS; i++)
		pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]);
	for (i = 0; i < rounds; i++) {
		host_op(vm);
		if (i % 50 == 49) {
			char when[48];

			snprintf(when, sizeof(when), "concurrent phase, operation %d", i);
			kernel_check(when);
		}
	}
	/* Every page present and private again, and written once more. */
	if (slot_b_deleted)
		toggle_slot_b(vm);
	printf("rtdp-report: concurrent: %d operations, %d deletions of memslot %d, %d checks\n",
	       rounds, slot_b_deletions - lock_step_deletions, SLOT_B, rounds / 50);
	TEST_ASSERT(slot_b_deletions > lock_step_deletions,
		    "no memslot was deleted while the vCPUs ran");
	vm_mem_set_private(vm, GPA, PAGES * PAGE_SIZE);
	WRITE_ONCE(stop, true);
	for (i = 0; i < NR_VCPUS; i++)
		pthread_join(threads[i], NULL);
	for (i = 0; i < NR_VCPUS; i++)
		run_to_sync(vcpus[i]);
	n = check(dump, "after the concurrent phase");
	TEST_ASSERT(n == PAGES, "%d of %d private pages mirrored", n, PAGES);

	printf("rtdp-report: external changes %ld busy %ld failed %ld, frozen retries %ld\n",
	       rtdp_debugfs_value(dir, "stats", "external_changes"),
	       rtdp_debugfs_value(dir, "stats", "external_busy"),
	       rtdp_debugfs_value(dir, "stats", "external_failed"),
	       rtdp_debugfs_value(dir, "stats", "retries_frozen"));
	TEST_ASSERT(rtdp_debugfs_value(dir, "stats", "external_busy") > 0 &&
		    rtdp_debugfs_value(dir, "stats", "external_failed") > 0,
		    "no install was refused: the refusals were not exercised");
	TEST_ASSERT(rtdp_debugfs_value(dir, "stats", "retries_frozen") >=
		    rtdp_debugfs_value(dir, "stats", "external_busy") +
		    rtdp_debugfs_value(dir, "stats", "external_failed"),
		    "a refused install was not retried as a frozen-SPTE retry");

	/* 3. The memslots deleted: nothing left in either. */
	vm_mem_region_delete(vm, SLOT_B);
	vm_mem_region_delete(vm, SLOT);
	n = check(dump, "memslots deleted");
	TEST_ASSERT(n == 0, "%d mirrored leaves after the memslots' deletion", n);
	read_external(ext);
	for (i = 0; i < PAGES; i++)
		TEST_ASSERT(!ext[i], "external leaf at page %d after the memslots' deletion", i);

	kvm_vm_free(vm);
	close(memfd);
	/* The VM's external table is dropped when the VM is destroyed. */
	for (i = 0; i < 1000 && read_external(ext); i++)
		usleep(10000);
	TEST_ASSERT(!read_external(ext), "the VM's external table outlived it");

	printf("rtdp-report: sw_external changes %ld busy %ld failed %ld, bad %ld leaked %ld\n",
	       swx_stat("changes"), swx_stat("busy"), swx_stat("failed"),
	       swx_stat("violations"), swx_stat("leaked"));
	TEST_ASSERT(!swx_stat("violations"), "the external table saw changes out of order");
	TEST_ASSERT(!swx_stat("leaked"), "leaves left in the external table of a destroyed VM");
	TEST_ASSERT(!syscall(SYS_delete_module, "kvm_rtdp_sw_external", O_NONBLOCK),
		    "rmmod kvm_rtdp_sw_external: %s", strerror(errno));
	return 0;
}
