// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_provider_test: a VM created while kvm_rtdp is the TDP MMU provider
 * stays bound to it.  Unloading kvm_rtdp while the VM lives must be refused,
 * and the VM must then run to completion with its memory intact.
 *
 * Skips unless /sys/module/kvm/parameters/tdp_mmu_provider is kvm_rtdp.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	512

static void guest_code(u64 gva)
{
	u64 i;

	for (i = 0; i < TEST_PAGES; i++)
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), i);
	GUEST_SYNC(1);
	for (i = 0; i < TEST_PAGES; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * PAGE_SIZE)), i);
	GUEST_DONE();
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char name[64] = "";
	FILE *f;
	int r;

	f = fopen("/sys/module/kvm/parameters/tdp_mmu_provider", "r");
	__TEST_REQUIRE(f, "kvm.ko has no TDP MMU provider interface");
	TEST_ASSERT(fgets(name, sizeof(name), f), "reading tdp_mmu_provider");
	fclose(f);
	__TEST_REQUIRE(!strcmp(name, "kvm_rtdp\n"), "provider is %s", name);

	vm = __vm_create_with_one_vcpu(&vcpu, TEST_PAGES / 256 + 64, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_PAGES, 0);
	virt_map(vm, TEST_GPA, TEST_GPA, TEST_PAGES);
	vcpu_args_set(vcpu, 1, TEST_GPA);
	rtdp_expect_ucall(vcpu, UCALL_SYNC);

	r = syscall(SYS_delete_module, "kvm_rtdp", O_NONBLOCK);
	TEST_ASSERT(r == -1 && (errno == EWOULDBLOCK || errno == EBUSY),
		    "unloading kvm_rtdp under a bound VM: ret %d errno %d (%s)",
		    r, errno, strerror(errno));
	printf("rmmod kvm_rtdp with a bound VM: refused (%s)\n", strerror(errno));

	rtdp_expect_ucall(vcpu, UCALL_DONE);
	printf("the VM ran to completion on kvm_rtdp\n");
	kvm_vm_free(vm);
	return 0;
}
