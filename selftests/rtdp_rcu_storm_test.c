// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_rcu_storm_test: how many removed page tables wait for an RCU grace
 * period when grace periods are held back, on the C TDP MMU and on kvm_rtdp.
 *
 * The guest writes one word per 2 MiB of a 2 GiB memslot backed by 4 KiB
 * pages, which links one last-level table per 2 MiB (1024).  The host then
 * holds back grace periods (the test module rtdp_rcu_hold keeps an RCU
 * read-side section open for HOLD_MS on one CPU) and, inside the hold,
 * flips kvm.nx_huge_pages, which zaps every root of every VM
 * (kvm_mmu_zap_all_fast()) and so removes every table.  (Deleting a memslot
 * zaps as much, but first waits for an SRCU grace period, whose work cannot
 * run on the CPU the hold keeps busy.)
 *
 * - C TDP MMU: one call_rcu() per table; the zap returns inside the hold, so
 *   every table it removed was waiting at once.  Reported, not asserted.
 * - kvm_rtdp: the VM's reclaim budget is set to BUDGET through its debugfs
 *   rcu file; the zap must wait for a grace period rather than go over it:
 *   the VM's peak of waiting tables must be at most BUDGET, with at least
 *   one wait, and nothing may be left waiting once the VM is gone.
 *
 * On both, the guest then reads every word back through new page tables.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_SLOT	10
#define TEST_GPA	(4ULL << 30)
#define TEST_SIZE	(2ULL << 30)
#define STRIDE		(2ULL << 20)
#define NR_TABLES	(TEST_SIZE / STRIDE)
#define NX_PARAM	"/sys/module/kvm/parameters/nx_huge_pages"
#define BUDGET		128
#define HOLD_MS		2000
#define HOLD_FILE	"/sys/kernel/debug/rtdp_rcu_hold"

static void guest_code(void)
{
	u64 gpa;

	for (gpa = TEST_GPA; gpa < TEST_GPA + TEST_SIZE; gpa += STRIDE)
		WRITE_ONCE(*(u64 *)gpa, gpa);
	GUEST_SYNC(1);
	/* Every table was removed meanwhile: fault everything in again. */
	for (gpa = TEST_GPA; gpa < TEST_GPA + TEST_SIZE; gpa += STRIDE)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)gpa), gpa);
	GUEST_DONE();
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double hold_start, hold_end;

static void *hold_rcu(void *arg)
{
	char ms[16];
	int fd = open(HOLD_FILE, O_WRONLY);

	TEST_ASSERT(fd >= 0, "open " HOLD_FILE);
	snprintf(ms, sizeof(ms), "%d", HOLD_MS);
	hold_start = now_ms();
	TEST_ASSERT(write(fd, ms, strlen(ms)) == (ssize_t)strlen(ms), "write " HOLD_FILE);
	hold_end = now_ms();
	close(fd);
	return NULL;
}

static void write_budget(const char *dir, long budget)
{
	char path[256];
	FILE *f;

	TEST_ASSERT(snprintf(path, sizeof(path), "%s/rcu", dir) < (int)sizeof(path),
		    "path too long: %s/rcu", dir);
	f = fopen(path, "w");
	TEST_ASSERT(f, "open %s", path);
	fprintf(f, "%ld\n", budget);
	TEST_ASSERT(!fclose(f), "write %s", path);
}

int main(void)
{
	long base, filled, zapped, removed, peak = 0, waits = 0, batches = 0;
	double zap_start, zap_end;
	struct kvm_vcpu *vcpu;
	char dir[256], nx[16];
	struct kvm_vm *vm;
	pthread_t holder;
	bool rust;

	__TEST_REQUIRE(!access(HOLD_FILE, W_OK), "no " HOLD_FILE " (load rtdp_rcu_hold.ko)");
	rtdp_read_line(NX_PARAM, nx, sizeof(nx));
	__TEST_REQUIRE(strcmp(nx, "never"), "kvm.nx_huge_pages=never cannot be flipped");
	base = rtdp_sec_page_tables_kb();
	__TEST_REQUIRE(base >= 0, "no SecPageTables in /proc/meminfo");

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_SIZE / getpagesize(), 0);
	virt_map_level(vm, TEST_GPA, TEST_GPA, TEST_SIZE, PG_LEVEL_2M);
	rust = rtdp_vm_column(dir, sizeof(dir));
	if (rust)
		write_budget(dir, BUDGET);

	rtdp_expect_ucall(vcpu, UCALL_SYNC);
	filled = rtdp_sec_page_tables_kb();
	TEST_ASSERT(filled - base >= (long)NR_TABLES * 4,
		    "SecPageTables grew by %ld kB, want at least %llu tables",
		    filled - base, NR_TABLES);

	pthread_create(&holder, NULL, hold_rcu, NULL);
	usleep(200 * 1000);
	zap_start = now_ms();
	rtdp_write_file(NX_PARAM, strcmp(nx, "N") ? "off" : "on");
	zap_end = now_ms();
	pthread_join(holder, NULL);
	zapped = rtdp_sec_page_tables_kb();
	removed = (filled - zapped) / 4;
	TEST_ASSERT(removed >= (long)NR_TABLES, "the zap removed %ld tables, want %llu",
		    removed, NR_TABLES);

	if (rust) {
		peak = rtdp_debugfs_value(dir, "rcu", "peak");
		waits = rtdp_debugfs_value(dir, "rcu", "waits");
		batches = rtdp_debugfs_value(dir, "rcu", "batches");
	}
	rtdp_expect_ucall(vcpu, UCALL_DONE);
	kvm_vm_free(vm);
	rtdp_write_file(NX_PARAM, strcmp(nx, "N") ? "on" : "off");
	rtdp_read_line(NX_PARAM, dir, sizeof(dir));
	TEST_ASSERT(!strcmp(dir, nx), "kvm.nx_huge_pages is %s, was %s", dir, nx);

	printf("hold %.0f-%.0f ms, zap %.0f-%.0f ms (relative to the hold)\n", 0.0,
	       hold_end - hold_start, zap_start - hold_start, zap_end - hold_start);
	if (!rust) {
		TEST_ASSERT(zap_end < hold_end,
			    "the zap ended %.0f ms after the hold: the hold did not cover it",
			    zap_end - hold_end);
		printf("rtdp-report: rcu storm, C: %ld tables waiting at once %s\n", removed,
		       "(all removed inside the grace-period hold)");
		return 0;
	}
	printf("rtdp-report: rcu storm, Rust: peak %ld waiting of %ld removed, budget %d\n",
	       peak, removed, BUDGET);
	printf("rtdp-report: rcu storm, Rust: %ld grace-period waits, %ld RCU callbacks\n",
	       waits, batches);
	TEST_ASSERT(peak <= BUDGET, "peak %ld tables waiting, budget %d", peak, BUDGET);
	TEST_ASSERT(waits >= 1, "%ld tables removed with a budget of %d, and no wait",
		    removed, BUDGET);
	return 0;
}
