// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_dirty_log_test: dirty logging, huge page split and recovery, and
 * aging, checked page by page.
 *
 * Dirty logging: a guest writes every page of a 32 MiB memslot backed by
 * 2 MiB hugetlb pages, so the TDP MMU maps it with 2 MiB pages.  Enabling
 * dirty logging splits them (eager split) and write-protects the slot.  In
 * each of three rounds the guest then writes a different third of the pages;
 * KVM_GET_DIRTY_LOG must report exactly the pages written in that round (a
 * missing page is a lost dirty bit, a stale one a page left writable or
 * reported twice), and re-protects them.  Disabling dirty logging must bring
 * the 2 MiB mappings back (recovery), and every page must hold what the
 * guest last wrote.
 *
 * Aging: a guest writes every page of a 1 MiB memslot of 4 KiB pages; the
 * host marks them idle through /sys/kernel/mm/page_idle, which ages their
 * SPTEs through the MMU notifier (a page that still reads young right after
 * is one aging did not make old), and the guest reads the first half again.
 * Every page read must be young again, and every other page still idle.
 *
 * On kvm_rtdp the VM's stats must show that Rust did the work: tables split,
 * SPTEs write-protected, huge pages recovered and SPTEs aged.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bits.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define LOG_SLOT	10
#define LOG_GPA		(4ULL << 30)
#define LOG_SIZE	(32ULL << 20)
#define LOG_PAGES	(LOG_SIZE / PAGE_SIZE)
#define HUGE_PAGES	(LOG_SIZE / (2ULL << 20))
#define ROUNDS		3

#define AGE_SLOT	11
#define AGE_GPA		(5ULL << 30)
#define AGE_PAGES	256ULL
#define AGE_SIZE	(AGE_PAGES * PAGE_SIZE)

#define PAGEMAP_PRESENT	BIT_ULL(63)
#define PAGEMAP_PFN	((1ULL << 55) - 1)

enum phase { FILL, WRITE_ROUND, CHECK, AGE_FILL, AGE_READ };

static enum phase phase;
static u64 round_nr;

/* Whether round @r writes page @i: a third of the pages, another each round. */
static bool written_in(u64 r, u64 i)
{
	return (i * 7 + r) % ROUNDS == 0;
}

static u64 value_of(u64 r, u64 i)
{
	return r << 32 | i;
}

/* What page @i holds after round @r (round 0: the fill). */
static u64 last_value(u64 r, u64 i)
{
	for (; r > 0; r--)
		if (written_in(r, i))
			return value_of(r, i);
	return value_of(0, i);
}

static void guest_code(void)
{
	u64 i, sum = 0;

	for (;;) {
		switch (READ_ONCE(phase)) {
		case FILL:
			for (i = 0; i < LOG_PAGES; i++)
				WRITE_ONCE(*(u64 *)(LOG_GPA + i * PAGE_SIZE), value_of(0, i));
			break;
		case WRITE_ROUND:
			for (i = 0; i < LOG_PAGES; i++)
				if (written_in(round_nr, i))
					WRITE_ONCE(*(u64 *)(LOG_GPA + i * PAGE_SIZE),
						   value_of(round_nr, i));
			break;
		case CHECK:
			for (i = 0; i < LOG_PAGES; i++)
				GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(LOG_GPA + i * PAGE_SIZE)),
						last_value(ROUNDS, i));
			break;
		case AGE_FILL:
			for (i = 0; i < AGE_PAGES; i++)
				WRITE_ONCE(*(u64 *)(AGE_GPA + i * PAGE_SIZE), i);
			break;
		case AGE_READ:
			for (i = 0; i < AGE_PAGES / 2; i++)
				sum += READ_ONCE(*(u64 *)(AGE_GPA + i * PAGE_SIZE));
			GUEST_ASSERT_EQ(sum, (AGE_PAGES / 2) * (AGE_PAGES / 2 - 1) / 2);
			break;
		}
		GUEST_SYNC(phase);
	}
}

static void run_phase(struct kvm_vcpu *vcpu, enum phase p)
{
	phase = p;
	sync_global_to_guest(vcpu->vm, phase);
	sync_global_to_guest(vcpu->vm, round_nr);
	rtdp_expect_ucall(vcpu, UCALL_SYNC);
}

static long hugepages_before = -1;

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static bool write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static void restore_hugepages(void)
{
	if (hugepages_before >= 0)
		write_long(NR_HUGEPAGES, hugepages_before);
}

static void reserve_hugepages(void)
{
	long want;

	hugepages_before = read_long(NR_HUGEPAGES);
	__TEST_REQUIRE(hugepages_before >= 0, "no %s", NR_HUGEPAGES);
	want = hugepages_before + HUGE_PAGES + 2;
	atexit(restore_hugepages);
	__TEST_REQUIRE(write_long(NR_HUGEPAGES, want) && read_long(NR_HUGEPAGES) >= want,
		       "cannot reserve %ld hugetlb pages", want);
}

static void check_dirty_log(struct kvm_vm *vm, unsigned long *bitmap, u64 r)
{
	u64 i, missing = 0, stale = 0, reported = 0;

	kvm_vm_get_dirty_log(vm, LOG_SLOT, bitmap);
	for (i = 0; i < LOG_PAGES; i++) {
		bool dirty = test_bit(i, bitmap);
		bool want = r > 0 && written_in(r, i);

		reported += dirty;
		missing += want && !dirty;
		stale += dirty && !want;
	}
	printf("rtdp-report: round %lu: %lu pages reported dirty, %lu missing, %lu not written\n",
	       r, reported, missing, stale);
	TEST_ASSERT(!missing, "round %lu: %lu written pages not reported dirty", r, missing);
	TEST_ASSERT(!stale, "round %lu: %lu pages reported dirty but not written", r, stale);
}

static void test_dirty_log(struct kvm_vcpu *vcpu, const char *stats)
{
	struct kvm_vm *vm = vcpu->vm;
	unsigned long *bitmap = calloc(LOG_PAGES / 64, sizeof(unsigned long));
	u64 huge_before, huge_split, huge_after, i, r;

	TEST_ASSERT(bitmap, "calloc");

	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, LOG_GPA, LOG_SLOT,
				    LOG_PAGES, 0);
	virt_map(vm, LOG_GPA, LOG_GPA, LOG_PAGES);

	run_phase(vcpu, FILL);
	huge_before = vm_get_stat(vm, pages_2m);
	TEST_ASSERT(huge_before >= HUGE_PAGES, "%lu 2 MiB mappings after the fill, want %llu",
		    huge_before, HUGE_PAGES);

	vm_mem_region_set_flags(vm, LOG_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	huge_split = vm_get_stat(vm, pages_2m);
	printf("2 MiB mappings: %lu after the fill, %lu with dirty logging on\n",
	       huge_before, huge_split);
	TEST_ASSERT(huge_before - huge_split >= HUGE_PAGES,
		    "dirty logging split %lu huge pages, want %llu", huge_before - huge_split,
		    HUGE_PAGES);

	check_dirty_log(vm, bitmap, 0);
	for (r = 1; r <= ROUNDS; r++) {
		round_nr = r;
		run_phase(vcpu, WRITE_ROUND);
		check_dirty_log(vm, bitmap, r);
	}

	vm_mem_region_set_flags(vm, LOG_SLOT, 0);
	huge_after = vm_get_stat(vm, pages_2m);
	printf("2 MiB mappings: %lu with dirty logging off again\n", huge_after);
	TEST_ASSERT(huge_after >= huge_before, "%lu 2 MiB mappings recovered of %lu",
		    huge_after, huge_before);

	for (i = 0; i < LOG_PAGES; i++) {
		u64 v = *(u64 *)addr_gpa2hva(vm, LOG_GPA + i * PAGE_SIZE);

		TEST_ASSERT(v == last_value(ROUNDS, i), "page %lu holds %#lx, want %#lx", i, v,
			    last_value(ROUNDS, i));
	}
	run_phase(vcpu, CHECK);

	if (stats) {
		long split = rtdp_debugfs_value(stats, "stats", "huge_pages_split");
		long wp = rtdp_debugfs_value(stats, "stats", "sptes_write_protected");
		long rec = rtdp_debugfs_value(stats, "stats", "huge_pages_recovered");

		printf("rtdp-report: kvm_rtdp: %ld huge pages split, %ld SPTEs write-protected, ",
		       split, wp);
		printf("%ld huge pages recovered\n", rec);
		TEST_ASSERT(split >= (long)HUGE_PAGES, "kvm_rtdp split %ld huge pages", split);
		TEST_ASSERT(wp >= (long)LOG_PAGES, "kvm_rtdp write-protected %ld SPTEs", wp);
		TEST_ASSERT(rec >= (long)HUGE_PAGES, "kvm_rtdp recovered %ld huge pages", rec);
	}
	free(bitmap);
}

static u64 pread_word(int fd, const char *name, u64 index)
{
	u64 v;

	TEST_ASSERT(pread(fd, &v, sizeof(v), index * sizeof(v)) == sizeof(v), "read %s", name);
	return v;
}

static u64 pfn_of(int pagemap, struct kvm_vm *vm, u64 gpa)
{
	u64 entry = pread_word(pagemap, "pagemap", (u64)addr_gpa2hva(vm, gpa) / getpagesize());

	TEST_ASSERT(entry & PAGEMAP_PRESENT, "gpa %#lx not present on the host", gpa);
	TEST_ASSERT(entry & PAGEMAP_PFN, "no pfn in pagemap (needs CAP_SYS_ADMIN)");
	return entry & PAGEMAP_PFN;
}

static bool is_idle(int idle, u64 pfn)
{
	return pread_word(idle, "page_idle", pfn / 64) >> (pfn % 64) & 1;
}

static void test_aging(struct kvm_vcpu *vcpu, const char *stats)
{
	struct kvm_vm *vm = vcpu->vm;
	u64 pfn[AGE_PAGES], i, tracked_read = 0, tracked_unread = 0, idle_unread = 0;
	bool tracked[AGE_PAGES];
	int pagemap, idle;

	idle = open("/sys/kernel/mm/page_idle/bitmap", O_RDWR);
	__TEST_REQUIRE(idle >= 0, "no /sys/kernel/mm/page_idle (CONFIG_IDLE_PAGE_TRACKING)");
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	TEST_ASSERT(pagemap >= 0, "open pagemap");

	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, AGE_GPA, AGE_SLOT, AGE_PAGES, 0);
	virt_map(vm, AGE_GPA, AGE_GPA, AGE_PAGES);
	run_phase(vcpu, AGE_FILL);

	/*
	 * Marking a page idle ages its SPTE; reading the bit back ages it
	 * again and clears the bit if the SPTE was still young.  So a page
	 * reads idle right after marking only if aging made its SPTE old.
	 * Pages not on an LRU list yet (still in a per-CPU batch) cannot be
	 * marked and are left out.
	 */
	for (i = 0; i < AGE_PAGES; i++) {
		u64 bit;

		pfn[i] = pfn_of(pagemap, vm, AGE_GPA + i * PAGE_SIZE);
		bit = 1ULL << (pfn[i] % 64);
		TEST_ASSERT(pwrite(idle, &bit, sizeof(bit), pfn[i] / 64 * sizeof(bit)) ==
			    sizeof(bit), "mark pfn %#lx idle", pfn[i]);
		tracked[i] = is_idle(idle, pfn[i]);
		if (i < AGE_PAGES / 2)
			tracked_read += tracked[i];
		else
			tracked_unread += tracked[i];
	}
	printf("aging: %lu of %llu pages idle after marking them\n",
	       tracked_read + tracked_unread, AGE_PAGES);
	TEST_ASSERT(tracked_read >= AGE_PAGES / 4 && tracked_unread >= AGE_PAGES / 4,
		    "only %lu + %lu of %llu pages could be made idle", tracked_read,
		    tracked_unread, AGE_PAGES);

	run_phase(vcpu, AGE_READ);

	for (i = 0; i < AGE_PAGES; i++) {
		if (!tracked[i])
			continue;
		if (i < AGE_PAGES / 2)
			TEST_ASSERT(!is_idle(idle, pfn[i]),
				    "page %lu was read by the guest but is still idle", i);
		else
			idle_unread += is_idle(idle, pfn[i]);
	}
	printf("rtdp-report: aging: the %lu idle pages the guest read are young, ",
	       tracked_read);
	printf("%lu of the %lu it did not read are idle\n", idle_unread, tracked_unread);
	TEST_ASSERT(idle_unread == tracked_unread,
		    "%lu idle pages the guest did not read became young",
		    tracked_unread - idle_unread);

	if (stats) {
		long aged = rtdp_debugfs_value(stats, "stats", "sptes_aged");

		printf("rtdp-report: kvm_rtdp: %ld SPTEs aged\n", aged);
		TEST_ASSERT(aged >= (long)(tracked_read + tracked_unread),
			    "kvm_rtdp aged %ld SPTEs, %lu pages were made idle", aged,
			    tracked_read + tracked_unread);
	}
	close(pagemap);
	close(idle);
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char stats[128];
	bool rtdp;

	__TEST_REQUIRE(get_kvm_param_bool("eager_page_split"), "kvm.eager_page_split is off");
	reserve_hugepages();

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	rtdp = rtdp_vm_column(stats, sizeof(stats));
	printf("mmu: %s\n", rtdp ? "kvm_rtdp" : "C TDP MMU");

	test_dirty_log(vcpu, rtdp ? stats : NULL);
	test_aging(vcpu, rtdp ? stats : NULL);

	kvm_vm_free(vm);
	return 0;
}
