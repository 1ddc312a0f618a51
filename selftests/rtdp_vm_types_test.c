// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_vm_types_test: which TDP MMU serves a VM, for every VM type KVM
 * offers (KVM_CAP_VM_TYPES), as the "tdp_mmu" file of the VM's debugfs
 * directory says (patch 0010).
 *
 * In the C column every VM is on the built-in TDP MMU.  In the kvm_rtdp
 * column every type is bound to it, TDX included (where KVM offers it).
 * A VM's file and kvm_rtdp's own per-VM debugfs directory must agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"

#include "rtdp_util.h"

/* What "tdp_mmu" of @vm says, without the newline, in @name. */
static void tdp_mmu_of(struct kvm_vm *vm, char *name, size_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/tdp_mmu", getpid(), vm->fd);
	f = fopen(path, "r");
	TEST_ASSERT(f, "no %s (patch 0010 missing, or no debugfs)", path);
	TEST_ASSERT(fgets(name, size, f), "reading %s", path);
	fclose(f);
	name[strcspn(name, "\n")] = 0;
}

int main(void)
{
	unsigned long types = BIT(KVM_X86_DEFAULT_VM), type;
	char name[64], dir[256];
	int checked = 0;
	bool rust;

	TEST_REQUIRE(kvm_is_tdp_enabled());
	rust = rtdp_rust_column();
	if (kvm_has_cap(KVM_CAP_VM_TYPES))
		types = kvm_check_cap(KVM_CAP_VM_TYPES);
	printf("VM types offered: %#lx\n", types);

	for (type = 0; type < BITS_PER_LONG; type++) {
		const char *want;
		struct kvm_vm *vm;
		bool bound;

		if (!(types & BIT(type)))
			continue;
		vm = vm_create_barebones_type(type);
		tdp_mmu_of(vm, name, sizeof(name));
		want = rust ? "kvm_rtdp" : "builtin";
		bound = rtdp_vm_debugfs(dir, sizeof(dir));
		printf("rtdp-report: VM type %lu: %s\n", type, name);
		TEST_ASSERT(!strcmp(name, want), "VM type %lu: served by %s, want %s", type, name,
			    want);
		TEST_ASSERT(bound == !strcmp(name, "kvm_rtdp"),
			    "VM type %lu: tdp_mmu says %s, but the VM %s kvm_rtdp debugfs directory",
			    type, name, bound ? "has a" : "has no");
		kvm_vm_free(vm);
		checked++;
	}
	TEST_ASSERT(checked, "no VM type checked");
	printf("rtdp_vm_types_test: PASS (%d VM types, each on the %s TDP MMU)\n", checked,
	       rust ? "expected" : "built-in");
	return 0;
}
