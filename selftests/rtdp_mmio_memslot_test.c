// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_mmio_memslot_test: an MMIO access never uses an MMIO SPTE that a
 * memslot update made stale, and a read of memory never outlives the memslot.
 *
 * The guest reads one gfn over and over.  The host makes that gfn memory (a
 * memslot over a buffer holding PATTERN) or MMIO (no memslot; the host
 * answers the read with MMIO_VALUE).  KVM caches "MMIO" in an SPTE tagged
 * with the memslot generation; once the memslot exists again, that SPTE must
 * not validate, or the guest would see MMIO_VALUE where memory is.
 *
 * Phase 1, in lock step: the host switches the gfn between MMIO and memory
 * between runs, after the guest has read it twice (once to create the MMIO
 * SPTE, once through it).  Every read must see what the gfn is.
 *
 * Phase 2, racing: a host thread keeps switching while the vCPU keeps
 * reading.  The switcher bumps a sequence count around each update (odd
 * while one is in flight); a read made while the count stayed even and
 * unchanged must see what the gfn was, any other read may see either.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	(4ULL << 30)
#define PATTERN		0x6d656d6f72790aULL	/* "memory" */
#define MMIO_VALUE	0x6d6d696f0aULL		/* "mmio" */
#define LOCKSTEP_ROUNDS	100
#define RACE_SECONDS	4

static void guest_code(void)
{
	for (;;)
		GUEST_SYNC(READ_ONCE(*(u64 *)TEST_GPA));
}

static struct kvm_vm *vm;
static void *buffer;
static atomic_ulong seq;	/* odd while the memslot changes */
static atomic_ulong reads;	/* guest reads completed in the race */
static atomic_bool stop;
static bool present;

/* Make the test gfn memory or MMIO (KVM refuses to delete an absent slot). */
static void set_memory(bool memory)
{
	if (memory == present)
		return;
	vm_set_user_memory_region(vm, TEST_SLOT, 0, TEST_GPA,
				  memory ? getpagesize() : 0, buffer);
	present = memory;
}

/* One guest read: true if it was answered as MMIO, false if from memory. */
static bool guest_read(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	bool mmio = false;
	struct ucall uc;

	vcpu_run(vcpu);
	if (run->exit_reason == KVM_EXIT_MMIO) {
		TEST_ASSERT(!run->mmio.is_write && run->mmio.phys_addr == TEST_GPA &&
			    run->mmio.len == 8,
			    "unexpected MMIO exit: %s of %u bytes at 0x%llx",
			    run->mmio.is_write ? "write" : "read", run->mmio.len,
			    run->mmio.phys_addr);
		memcpy(run->mmio.data, &(u64){ MMIO_VALUE }, 8);
		mmio = true;
		vcpu_run(vcpu);
	}
	rtdp_check_ucall(vcpu, UCALL_SYNC, &uc);
	TEST_ASSERT(uc.args[1] == (mmio ? MMIO_VALUE : PATTERN),
		    "guest read 0x%lx after %s", uc.args[1],
		    mmio ? "an MMIO exit" : "no MMIO exit");
	return mmio;
}

static void lockstep(struct kvm_vcpu *vcpu)
{
	int round;

	for (round = 0; round < LOCKSTEP_ROUNDS; round++) {
		bool memory = round & 1;
		int i;

		set_memory(memory);
		for (i = 0; i < 2; i++)
			TEST_ASSERT(guest_read(vcpu) == !memory,
				    "round %d read %d: the gfn is %s, the guest saw %s",
				    round, i, memory ? "memory" : "MMIO",
				    memory ? "MMIO (a stale MMIO SPTE)" : "memory");
	}
	printf("lock step: %d switches, every read saw what the gfn was\n",
	       LOCKSTEP_ROUNDS);
}

/*
 * Switch as fast as the vCPU reads: after each switch, wait (at most 4 ms)
 * for two more reads to complete, the first of which may have raced the
 * switch while the second began after it, so that reads alternate between
 * racing a switch and falling between two.
 */
static void *switcher(void *arg)
{
	bool memory = false;

	while (!atomic_load(&stop)) {
		unsigned long before;
		int waited;

		memory = !memory;
		atomic_fetch_add(&seq, 1);
		set_memory(memory);
		atomic_fetch_add(&seq, 1);

		before = atomic_load(&reads);
		for (waited = 0; waited < 400 && atomic_load(&reads) < before + 2 &&
		     !atomic_load(&stop); waited++)
			usleep(10);
	}
	return NULL;
}

static void race(struct kvm_vcpu *vcpu)
{
	unsigned long checked = 0, mmio_reads = 0;
	struct timespec start, now;
	pthread_t thread;

	set_memory(false);
	atomic_store(&seq, 0);
	pthread_create(&thread, NULL, switcher, NULL);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		unsigned long before = atomic_load(&seq);
		bool mmio = guest_read(vcpu);
		unsigned long after = atomic_load(&seq);

		atomic_fetch_add(&reads, 1);
		mmio_reads += mmio;
		/* Stable across the read: the gfn was MMIO iff seq/2 is even. */
		if (before == after && !(before & 1)) {
			bool memory = (before / 2) & 1;

			checked++;
			TEST_ASSERT(mmio == !memory,
				    "read %lu with the gfn stable as %s saw %s",
				    atomic_load(&reads), memory ? "memory" : "MMIO",
				    mmio ? "MMIO" : "memory");
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < RACE_SECONDS);
	atomic_store(&stop, true);
	pthread_join(thread, NULL);
	printf("racing: %lu reads (%lu MMIO) over %lu memslot updates, %lu checked\n",
	       atomic_load(&reads), mmio_reads, atomic_load(&seq) / 2, checked);
	TEST_ASSERT(checked > 0, "no read happened between two updates");
}

int main(void)
{
	struct kvm_vcpu *vcpu;

	buffer = mmap(NULL, getpagesize(), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(buffer != MAP_FAILED, "mmap");
	*(u64 *)buffer = PATTERN;

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	virt_map(vm, TEST_GPA, TEST_GPA, 1);

	lockstep(vcpu);
	race(vcpu);

	kvm_vm_free(vm);
	munmap(buffer, getpagesize());
	return 0;
}
