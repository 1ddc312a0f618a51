// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_smoke: fault guest memory in through the TDP MMU, check that data
 * written on either side is seen on the other, and that the VM's page stats
 * account for every page faulted in.  Prints which MMU served the VM.
 *
 * Usage: rtdp_smoke [-m MiB]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_GVA	TEST_GPA
#define GUEST_MAGIC	0x72746470ULL	/* "rtdp" */
#define HOST_MAGIC	0x686f7374ULL	/* "host" */

static void guest_code(u64 gva, u64 npages)
{
	u64 i;

	for (i = 0; i < npages; i++)
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), GUEST_MAGIC ^ i);
	GUEST_SYNC(1);

	for (i = 0; i < npages; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * PAGE_SIZE)), HOST_MAGIC ^ i);
	GUEST_DONE();
}

/* First line of @path without its newline, or false if it cannot be read. */
static bool read_line(const char *path, char *buf, int len)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = !!fgets(buf, len, f);
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = 0;
	return ok;
}

/* Which MMU serves new VMs, as far as this kernel can say. */
static void print_mmu(void)
{
	char buf[64];

	if (!read_line("/sys/module/kvm/parameters/tdp_mmu", buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "?");
	printf("mmu: kvm.tdp_mmu=%s, ", buf);
	if (read_line("/sys/module/kvm/parameters/tdp_mmu_provider", buf, sizeof(buf)))
		printf("provider for new VMs: %s\n", buf);
	else
		printf("served by the C TDP MMU (kvm.ko has no provider interface)\n");
}

/*
 * kvm_rtdp's counter @name for this process's VM
 * (/sys/kernel/debug/kvm_rtdp/<pid>-<n>/stats), or -1 if there is none.
 */
static long rtdp_stat(const char *name)
{
	const char *root = "/sys/kernel/debug/kvm_rtdp";
	char prefix[32], path[512], line[128];
	struct dirent *d;
	long value = -1;
	DIR *dir;
	FILE *f;

	dir = opendir(root);
	if (!dir)
		return -1;
	snprintf(prefix, sizeof(prefix), "%d-", getpid());
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "%s/%s/stats", root, d->d_name);
		f = fopen(path, "r");
		TEST_ASSERT(f, "open %s", path);
		while (fgets(line, sizeof(line), f)) {
			char key[64];
			long v;

			if (sscanf(line, "%63s %ld", key, &v) == 2 && !strcmp(key, name))
				value = v;
		}
		fclose(f);
	}
	closedir(dir);
	return value;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char *argv[])
{
	u64 mib = 64, npages, i, mapped, p4k, p2m, p1g;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	double t0, t1;
	const char *col;
	long fixed;
	int opt;

	while ((opt = getopt(argc, argv, "m:")) != -1) {
		switch (opt) {
		case 'm':
			mib = strtoull(optarg, NULL, 0);
			break;
		default:
			printf("usage: %s [-m MiB]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_is_tdp_enabled());
	npages = mib << 20 >> PAGE_SHIFT;

	print_mmu();
	/* Room in the default slot for the guest page tables of the test range. */
	vm = __vm_create_with_one_vcpu(&vcpu, npages / 256 + 64, guest_code);
	/* 4K backing (MADV_NOHUGEPAGE), so each guest page is one 4K SPTE. */
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    npages, 0);
	virt_map(vm, TEST_GVA, TEST_GPA, npages);
	vcpu_args_set(vcpu, 2, TEST_GVA, npages);

	p4k = vm_get_stat(vm, pages_4k);
	t0 = now();
	rtdp_expect_ucall(vcpu, UCALL_SYNC);
	t1 = now();

	mapped = vm_get_stat(vm, pages_4k) - p4k;
	p2m = vm_get_stat(vm, pages_2m);
	p1g = vm_get_stat(vm, pages_1g);
	printf("guest faulted in %lu pages (%lu MiB) in %.2f s: %.0f pages/s\n",
	       npages, mib, t1 - t0, npages / (t1 - t0));
	printf("vm stats: pages_4k +%lu, pages_2m %lu, pages_1g %lu\n",
	       mapped, p2m, p1g);
	TEST_ASSERT(mapped >= npages,
		    "pages_4k grew by %lu, but the guest touched %lu 4K-backed pages",
		    mapped, npages);

	for (i = 0; i < npages; i++) {
		u64 *hva = addr_gpa2hva(vm, TEST_GPA + i * PAGE_SIZE);

		TEST_ASSERT(*hva == (GUEST_MAGIC ^ i), "page %lu: host read %#lx", i, *hva);
		*hva = HOST_MAGIC ^ i;
	}
	rtdp_expect_ucall(vcpu, UCALL_DONE);
	printf("data: %lu pages written by the guest read back by the host, and the reverse\n",
	       npages);

	fixed = rtdp_stat("faults_fixed");
	col = getenv("RTDP_COLUMN");
	if (col)
		TEST_ASSERT((fixed >= 0) == !strcmp(col, "rust"),
			    "column %s, but the VM %s kvm_rtdp statistics", col,
			    fixed >= 0 ? "has" : "has no");
	if (fixed >= 0) {
		long checks = rtdp_stat("retry_checks");

		printf("kvm_rtdp stats: %ld faults fixed, %ld retry checks\n", fixed, checks);
		TEST_ASSERT(fixed >= (long)npages,
			    "kvm_rtdp fixed %ld faults, but the guest touched %lu pages",
			    fixed, npages);
		/*
		 * Nothing is invalidated while the guest faults its pages in,
		 * so kvm.ko answers the retry check of each fault itself: a
		 * few checks at most (khugepaged may run), never one per fault.
		 */
		TEST_ASSERT(checks >= 0 && checks < (long)npages / 10,
			    "kvm.ko asked kvm_rtdp %ld retry checks for %lu faults",
			    checks, npages);
	}

	kvm_vm_free(vm);
	printf("rtdp_smoke: PASS\n");
	return 0;
}
