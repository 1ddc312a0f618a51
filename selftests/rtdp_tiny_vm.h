/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A VM of raw KVM ioctls with a 16-bit guest, for tests that must know
 * exactly which ioctls ran (fault injection) or make many VMs quickly (load
 * stress): code at gpa 0 (slot 0), data at 0x10000 (slot 1, %ds).  The
 * guest writes 0x1234 at data + 0x2000, copies the word the host put at
 * data + 0x3000 to data + 0x2002, and halts.  No in-kernel irqchip, so hlt
 * exits to user space.
 */
#ifndef SELFTEST_RTDP_TINY_VM_H
#define SELFTEST_RTDP_TINY_VM_H

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"

#define TINY_DATA_GPA	0x10000
#define TINY_SIZE	0x10000
#define TINY_OUT	0x2000	/* the guest writes 0x1234 here ... */
#define TINY_IN		0x3000	/* ... and copies this word to TINY_OUT + 2 */
#define TINY_MAGIC	0x5678

static const u8 tiny_code[] = {
	0xb8, 0x34, 0x12,	/* mov $0x1234, %ax */
	0xa3, 0x00, 0x20,	/* mov %ax, 0x2000 (%ds: the data slot) */
	0xa1, 0x00, 0x30,	/* mov 0x3000, %ax */
	0xa3, 0x02, 0x20,	/* mov %ax, 0x2002 */
	0xf4,			/* hlt */
};

struct tiny {
	int vm, vcpu;
	struct kvm_run *run;
	u8 *code, *data;
};

/* /dev/kvm and the size of kvm_run, set by tiny_open(). */
static int kvm_fd;
static long run_size;

static inline void tiny_open(void)
{
	kvm_fd = open_kvm_dev_path_or_exit();
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	TEST_ASSERT(run_size > 0, "KVM_GET_VCPU_MMAP_SIZE");
}

static inline int set_slot(struct tiny *t, int slot, u64 gpa, void *hva, u64 size)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (u64)hva,
	};

	return ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &r) ? -errno : 0;
}

static inline void tiny_data(struct tiny *t)
{
	if (t->data)
		munmap(t->data, TINY_SIZE);
	t->data = mmap(NULL, TINY_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	TEST_ASSERT(t->data != MAP_FAILED, "mmap");
	*(u16 *)(t->data + TINY_IN) = TINY_MAGIC;
	TEST_ASSERT(!set_slot(t, 1, TINY_DATA_GPA, t->data, TINY_SIZE), "adding the data slot");
}

static inline void tiny_regs(struct tiny *t)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rflags = 2 };

	TEST_ASSERT(!ioctl(t->vcpu, KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = TINY_DATA_GPA;
	sregs.ds.selector = TINY_DATA_GPA >> 4;
	TEST_ASSERT(!ioctl(t->vcpu, KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
	TEST_ASSERT(!ioctl(t->vcpu, KVM_SET_REGS, &regs), "KVM_SET_REGS");
}

/* Give the VM @vm its slots and a vCPU at the first instruction. */
static inline void tiny_setup(struct tiny *t, int vm)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->code = mmap(NULL, TINY_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	TEST_ASSERT(t->code != MAP_FAILED, "mmap");
	memcpy(t->code, tiny_code, sizeof(tiny_code));
	TEST_ASSERT(!set_slot(t, 0, 0, t->code, TINY_SIZE), "adding the code slot");
	tiny_data(t);
	t->vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	TEST_ASSERT(t->vcpu >= 0, "KVM_CREATE_VCPU");
	t->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	TEST_ASSERT(t->run != MAP_FAILED, "mmap kvm_run");
	tiny_regs(t);
}

static inline void tiny_new(struct tiny *t)
{
	int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);

	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM");
	tiny_setup(t, vm);
}

static inline int tiny_run_once(struct tiny *t)
{
	return ioctl(t->vcpu, KVM_RUN, NULL) ? -errno : 0;
}

/* The guest's words must be in the data slot. */
static inline void tiny_check(struct tiny *t, const char *what)
{
	TEST_ASSERT(*(u16 *)(t->data + TINY_OUT) == 0x1234 &&
		    *(u16 *)(t->data + TINY_OUT + 2) == TINY_MAGIC,
		    "%s: the guest's data is %#x %#x", what,
		    *(u16 *)(t->data + TINY_OUT), *(u16 *)(t->data + TINY_OUT + 2));
}

/* Run to the hlt (unless the last KVM_RUN, which returned @r, got there). */
static inline void tiny_finish(struct tiny *t, int r, const char *what)
{
	if (r || t->run->exit_reason != KVM_EXIT_HLT) {
		do {
			r = tiny_run_once(t);
		} while (r == -EINTR);
	}
	TEST_ASSERT(!r && t->run->exit_reason == KVM_EXIT_HLT,
		    "%s: KVM_RUN %d, exit %u, want hlt", what, r, t->run->exit_reason);
	tiny_check(t, what);
}

static inline void tiny_free(struct tiny *t)
{
	if (t->run)
		munmap(t->run, run_size);
	if (t->vcpu > 0)
		close(t->vcpu);
	close(t->vm);
	munmap(t->code, TINY_SIZE);
	munmap(t->data, TINY_SIZE);
}

#endif /* SELFTEST_RTDP_TINY_VM_H */
