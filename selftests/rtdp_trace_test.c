// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_trace_test: the kvmmmu events fire on kvm_rtdp as on the C TDP MMU,
 * at the same points and with the same fields.
 *
 * One deterministic workload (one vCPU, this thread pinned to one CPU)
 * runs with the TDP MMU's events enabled in a tracefs instance that
 * records only this process: faults on a 4K-backed and a hugetlb-backed
 * memslot, two MMIO reads (the second checks the MMIO SPTE), dirty
 * logging on (eager split, write-protection), writes and GET_DIRTY_LOG
 * (the mask path), dirty logging off (huge pages recovered), aging through
 * page_idle, an MMU notifier zap (MADV_DONTNEED) and faults again, and a
 * memslot deletion (every root zapped).  The events are normalized (host
 * addresses and pfns differ from one VM to the next, nothing else may) and
 * saved in the C column, the plan's first; in the kvm_rtdp column they must
 * be the same sequence up to the root zap, and the root zap, whose passes
 * differ by design, must remove the same SPTEs and tables (see
 * root_zap_summary()).  Every event must have fired at least once.
 *
 * Usage: rtdp_trace_test [-f FILE]   (default /tmp/rtdp_trace_test.c)
 * Needs tracefs (a kernel with CONFIG_EVENT_TRACING; skips without) and
 * two free 2 MiB hugetlb pages (run it through rtdp_hugetlb.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define SMALL_SLOT	10
#define SMALL_GPA	BIT_ULL(32)
#define SMALL_PAGES	64
#define HUGE_SLOT	11
#define HUGE_GPA	(SMALL_GPA + BIT_ULL(30))
#define HUGE_PAGES	1024		/* 4 MiB: two 2 MiB pages */
#define MMIO_GPA	(SMALL_GPA + BIT_ULL(31))	/* two pages */
#define DIRTY_PAGES	8

/* The marker before the root zap, which is compared differently. */
#define ROOT_ZAP	"root zap"

#define TRACEFS		"/sys/kernel/tracing"
#define INSTANCE	TRACEFS "/instances/rtdp_trace_test"

/* The events tdp_mmu.c and its callers in mmu.c emit for the TDP MMU. */
static const char *const events[] = {
	"kvm_mmu_get_page", "kvm_mmu_prepare_zap_page", "kvm_mmu_spte_requested",
	"kvm_mmu_set_spte", "kvm_tdp_mmu_spte_changed", "kvm_mmu_split_huge_page",
	"mark_mmio_spte", "check_mmio_spte",
};

#define NR_EVENTS ARRAY_SIZE(events)

static void guest_code(void)
{
	u64 i;

	/* Untraced: the guest's code, stack and ucall pages faulted in. */
	GUEST_SYNC(0);

	for (i = 0; i < SMALL_PAGES; i++)
		WRITE_ONCE(*(u64 *)(SMALL_GPA + i * PAGE_SIZE), i);
	for (i = 0; i < HUGE_PAGES; i++)
		WRITE_ONCE(*(u64 *)(HUGE_GPA + i * PAGE_SIZE), i);
	GUEST_SYNC(1);

	/*
	 * The third read misses the vCPU's MMIO cache (one gfn, the second
	 * page's) and takes the MMIO SPTE the first one made.
	 */
	READ_ONCE(*(u64 *)MMIO_GPA);
	READ_ONCE(*(u64 *)(MMIO_GPA + PAGE_SIZE));
	READ_ONCE(*(u64 *)MMIO_GPA);
	GUEST_SYNC(2);

	/* Under dirty logging. */
	for (i = 0; i < DIRTY_PAGES; i++) {
		WRITE_ONCE(*(u64 *)(SMALL_GPA + i * 3 * PAGE_SIZE), i);
		WRITE_ONCE(*(u64 *)(HUGE_GPA + i * 97 * PAGE_SIZE), i);
	}
	GUEST_SYNC(3);

	/* After aging and the zap of the first half of the small slot. */
	for (i = 0; i < SMALL_PAGES; i++)
		READ_ONCE(*(u64 *)(SMALL_GPA + i * PAGE_SIZE));
	for (i = 0; i < HUGE_PAGES; i += 512)
		READ_ONCE(*(u64 *)(HUGE_GPA + i * PAGE_SIZE));
	GUEST_DONE();
}

/* Run @vcpu to ucall @want, answering the MMIO reads of the two pages. */
static void run_to(struct kvm_vcpu *vcpu, u64 want)
{
	rtdp_run_answering_mmio(vcpu, want, MMIO_GPA, 2 * PAGE_SIZE);
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write %s to %s: %s", s,
		    path, strerror(errno));
	close(fd);
}

/* A tracefs instance recording the events of @pid only. */
static void trace_start(pid_t pid)
{
	char path[256], s[32];
	unsigned int i;

	if (access(TRACEFS "/instances", F_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	__TEST_REQUIRE(!access(TRACEFS "/instances", F_OK),
		       "no tracefs at " TRACEFS " (CONFIG_EVENT_TRACING)");
	rmdir(INSTANCE);
	TEST_ASSERT(!mkdir(INSTANCE, 0755), "mkdir " INSTANCE ": %s", strerror(errno));
	write_file(INSTANCE "/buffer_size_kb", "8192");
	snprintf(s, sizeof(s), "%d", pid);
	write_file(INSTANCE "/set_event_pid", s);
	for (i = 0; i < NR_EVENTS; i++) {
		snprintf(path, sizeof(path), INSTANCE "/events/kvmmmu/%s/enable", events[i]);
		write_file(path, "1");
	}
}

static void trace_stop(void)
{
	write_file(INSTANCE "/events/enable", "0");
}

/* Host-side values in an SPTE: the pfn of a present one. */
static u64 normalize_spte(u64 spte)
{
	return spte & BIT_ULL(11) ? spte & ~GENMASK_ULL(51, 12) : spte;
}

/*
 * Replace the value after @key in @s (hex, as the event prints it) by the
 * SPTE normalized, or by "*" if @spte is false.
 */
static void normalize_field(char *s, const char *key, bool spte)
{
	char *p = strstr(s, key), *end, rest[512];
	u64 v;

	if (!p)
		return;
	p += strlen(key);
	v = strtoull(p, &end, 16);
	snprintf(rest, sizeof(rest), "%s", end);
	if (spte)
		sprintf(p, "%llx%s", (unsigned long long)normalize_spte(v), rest);
	else
		sprintf(p, "*%s", rest);
}

/*
 * The events of the instance, one per line of @out: "name: fields", with
 * the task, CPU and timestamp dropped and host values normalized; counts
 * per event in @counts.  Asserts that the buffer lost nothing.
 */
static unsigned long trace_collect(FILE *out, unsigned long *counts)
{
	char line[1024], *p;
	unsigned long n = 0;
	unsigned int i;
	FILE *f;

	f = fopen(INSTANCE "/per_cpu/cpu0/stats", "r");
	if (f) {
		while (fgets(line, sizeof(line), f))
			TEST_ASSERT(strncmp(line, "overrun:", 8) || atol(line + 8) == 0,
				    "the trace buffer overflowed: %s", line);
		fclose(f);
	}
	f = fopen(INSTANCE "/trace", "r");
	TEST_ASSERT(f, "open " INSTANCE "/trace");
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		p = strstr(line, " tracing_mark_write: ");
		if (p) {
			fprintf(out, "-- %s", p + strlen(" tracing_mark_write: "));
			continue;
		}
		for (i = 0; i < NR_EVENTS; i++) {
			char key[64];

			snprintf(key, sizeof(key), " %s: ", events[i]);
			p = strstr(line, key);
			if (p)
				break;
		}
		TEST_ASSERT(i < NR_EVENTS, "unexpected trace line: %s", line);
		p++;
		normalize_field(p, "sptep:", false);
		normalize_field(p, " at ", false);
		normalize_field(p, " pfn ", false);
		normalize_field(p, " spte ", true);
		normalize_field(p, "old_spte ", true);
		normalize_field(p, "new_spte ", true);
		fputs(p, out);
		counts[i]++;
		n++;
	}
	fclose(f);
	rmdir(INSTANCE);
	return n;
}

static void pin_to_one_cpu(void)
{
	cpu_set_t set;
	int cpu;

	TEST_ASSERT(!sched_getaffinity(0, sizeof(set), &set), "sched_getaffinity");
	for (cpu = 0; !CPU_ISSET(cpu, &set); cpu++)
		;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	TEST_ASSERT(!sched_setaffinity(0, sizeof(set), &set), "sched_setaffinity");
	TEST_ASSERT(cpu == 0, "pinned to CPU %d: the overrun check reads cpu0", cpu);
}

/*
 * Mark the host pages of the small slot idle: the MMU notifier ages them.
 * page_idle skips a page not yet on an LRU list, as those just faulted in
 * may still be in this CPU's batch: mlock() and munlock() drain it first.
 */
static void age_small_slot(struct kvm_vm *vm)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY);
	int idle = open("/sys/kernel/mm/page_idle/bitmap", O_WRONLY);
	void *hva = addr_gpa2hva(vm, SMALL_GPA);
	u64 i, entry, pfn, bit;

	__TEST_REQUIRE(idle >= 0, "no /sys/kernel/mm/page_idle (CONFIG_IDLE_PAGE_TRACKING)");
	TEST_ASSERT(pagemap >= 0, "open /proc/self/pagemap");
	TEST_ASSERT(!mlock(hva, SMALL_PAGES * getpagesize()), "mlock: %s", strerror(errno));
	TEST_ASSERT(!munlock(hva, SMALL_PAGES * getpagesize()), "munlock: %s", strerror(errno));
	for (i = 0; i < SMALL_PAGES; i++) {
		u64 hva = (u64)addr_gpa2hva(vm, SMALL_GPA + i * PAGE_SIZE);

		TEST_ASSERT(pread(pagemap, &entry, 8, hva / getpagesize() * 8) == 8, "pagemap");
		pfn = entry & GENMASK_ULL(54, 0);
		TEST_ASSERT(entry & BIT_ULL(63) && pfn, "no pfn for gpa %#llx",
			    SMALL_GPA + i * PAGE_SIZE);
		bit = BIT_ULL(pfn % 64);
		TEST_ASSERT(pwrite(idle, &bit, 8, pfn / 64 * 8) == 8, "page_idle");
	}
	close(idle);
	close(pagemap);
}

static unsigned long workload(FILE *out, unsigned long *counts)
{
	unsigned long *bitmap = calloc(HUGE_PAGES / 64, sizeof(unsigned long));
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	unsigned long n;

	TEST_ASSERT(bitmap, "calloc");
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, SMALL_GPA, SMALL_SLOT,
				    SMALL_PAGES, 0);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, HUGE_GPA, HUGE_SLOT,
				    HUGE_PAGES, 0);
	virt_map(vm, SMALL_GPA, SMALL_GPA, SMALL_PAGES);
	virt_map(vm, HUGE_GPA, HUGE_GPA, HUGE_PAGES);
	virt_map(vm, MMIO_GPA, MMIO_GPA, 2);
	run_to(vcpu, UCALL_SYNC);

	trace_start(getpid());
	run_to(vcpu, UCALL_SYNC);
	run_to(vcpu, UCALL_SYNC);

	vm_mem_region_set_flags(vm, SMALL_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	vm_mem_region_set_flags(vm, HUGE_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	run_to(vcpu, UCALL_SYNC);
	kvm_vm_get_dirty_log(vm, SMALL_SLOT, bitmap);
	kvm_vm_get_dirty_log(vm, HUGE_SLOT, bitmap);
	vm_mem_region_set_flags(vm, SMALL_SLOT, 0);
	vm_mem_region_set_flags(vm, HUGE_SLOT, 0);

	age_small_slot(vm);
	TEST_ASSERT(!madvise(addr_gpa2hva(vm, SMALL_GPA), SMALL_PAGES / 2 * getpagesize(),
			     MADV_DONTNEED), "MADV_DONTNEED");
	run_to(vcpu, UCALL_DONE);
	write_file(INSTANCE "/trace_marker", ROOT_ZAP "\n");
	vm_mem_region_delete(vm, SMALL_SLOT);
	trace_stop();

	n = trace_collect(out, counts);
	kvm_vm_free(vm);
	free(bitmap);
	return n;
}

/* The lines of @path, in *@nr. */
static char **read_lines(const char *path, unsigned long *nr)
{
	unsigned long size = 1024, n = 0;
	char **lines = malloc(size * sizeof(*lines)), buf[1024];
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f, "%s: not there (the C column saves it, and runs first)", path);
	TEST_ASSERT(lines, "malloc");
	while (fgets(buf, sizeof(buf), f)) {
		if (n == size) {
			size *= 2;
			lines = realloc(lines, size * sizeof(*lines));
			TEST_ASSERT(lines, "realloc");
		}
		lines[n++] = strdup(buf);
	}
	fclose(f);
	*nr = n;
	return lines;
}

static void print_around(const char *who, char **lines, unsigned long n, unsigned long at)
{
	unsigned long i;

	for (i = at > 3 ? at - 3 : 0; i < n && i < at + 6; i++)
		printf("rtdp-report:   %-8s %6lu%s %s", who, i + 1, i == at ? ">" : " ", lines[i]);
	if (at >= n)
		printf("rtdp-report:   %-8s (ends after %lu events)\n", who, n);
}

#define FROZEN_SPTE	0x80000000000001a0ULL	/* spte.h */
#define SPTE_CHANGED_FORMAT \
	"kvm_tdp_mmu_spte_changed: as id %d gfn %llx level %d old_spte %llx new_spte %llx"

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * What the root zap in @lines[@from..@n) did, in an order of its own
 * (sorted): one line per present SPTE it removed ("removed: as id, gfn,
 * level, old value"), its other events but the SPTE changes as they are,
 * and the number of SPTEs frozen.  The two MMUs zap a root in different
 * passes by design: the C TDP MMU zaps the 1 GiB-level SPTEs and then the
 * top level, freezing every entry of each table it removes; kvm_rtdp goes
 * bottom up (4 KiB, 2 MiB, 1 GiB, top level), so every present SPTE is
 * zapped before its table, now empty, is removed and its entries frozen
 * (Documentation/rust-mmu.md).  Either way each present SPTE is removed
 * once with the same value, the same tables are torn down, and as many
 * entries are frozen.
 */
static char **root_zap_summary(char **lines, unsigned long from, unsigned long n,
			       unsigned long *nr)
{
	char **out = calloc(n - from + 1, sizeof(*out)), buf[256];
	unsigned long i, k = 0, frozen = 0;
	unsigned long long gfn, old, new;
	int as_id, level;

	TEST_ASSERT(out, "calloc");
	for (i = from; i < n; i++) {
		if (sscanf(lines[i], SPTE_CHANGED_FORMAT, &as_id, &gfn, &level, &old, &new) != 5) {
			out[k++] = lines[i];
			continue;
		}
		frozen += new == FROZEN_SPTE;
		if (old & BIT_ULL(11) && !(new & BIT_ULL(11))) {
			snprintf(buf, sizeof(buf),
				 "removed: as id %d gfn %llx level %d old_spte %llx\n", as_id, gfn,
				 level, old);
			out[k++] = strdup(buf);
		} else if (new != FROZEN_SPTE) {
			out[k++] = lines[i];
		}
	}
	snprintf(buf, sizeof(buf), "SPTEs frozen: %lu\n", frozen);
	out[k++] = strdup(buf);
	qsort(out, k, sizeof(*out), cmp_line);
	*nr = k;
	return out;
}

static unsigned long find_root_zap(char **lines, unsigned long n)
{
	unsigned long i;

	for (i = 0; i < n; i++)
		if (!strcmp(lines[i], "-- " ROOT_ZAP "\n"))
			return i;
	TEST_FAIL("no \"" ROOT_ZAP "\" marker in the trace");
	return n;
}

/* The first line where @a and @b differ, or the length of both if none. */
static unsigned long first_difference(char **a, unsigned long na, char **b, unsigned long nb)
{
	unsigned long at;

	for (at = 0; at < na && at < nb && !strcmp(a[at], b[at]); at++)
		;
	return at;
}

/*
 * The same events as @c (the C column's): the same sequence up to the
 * root zap, the same summary of it.
 */
static int compare(char **c, unsigned long nc, char **r, unsigned long nr)
{
	unsigned long want[NR_EVENTS] = {}, got[NR_EVENTS] = {}, i, at, zc, zr, sc, sr;
	unsigned long removed, tables;
	char **summary_c, **summary_r;
	unsigned int e;
	int diff = 0;

	zc = find_root_zap(c, nc);
	zr = find_root_zap(r, nr);
	at = first_difference(c, zc, r, zr);
	if (at < zc || at < zr) {
		printf("rtdp-report: first difference at event %lu:\n", at + 1);
		print_around("C", c, zc, at);
		print_around("kvm_rtdp", r, zr, at);
		diff = 1;
	}
	printf("rtdp-report: before the root zap: C %lu events, kvm_rtdp %lu%s\n", zc, zr,
	       diff ? "" : ", the same sequence");
	summary_c = root_zap_summary(c, zc + 1, nc, &sc);
	summary_r = root_zap_summary(r, zr + 1, nr, &sr);
	at = first_difference(summary_c, sc, summary_r, sr);
	for (i = 0, removed = 0, tables = 0; i < sc; i++) {
		removed += !strncmp(summary_c[i], "removed:", 8);
		tables += !strncmp(summary_c[i], "kvm_mmu_prepare_zap_page:", 25);
	}
	printf("rtdp-report: root zap: C %lu events, kvm_rtdp %lu; ", nc - zc - 1, nr - zr - 1);
	printf("C removed %lu present SPTEs and %lu tables; summaries %s\n", removed, tables,
	       at < sc || at < sr ? "differ" : "equal");
	if (at < sc || at < sr) {
		printf("rtdp-report: root zap summaries differ at line %lu:\n", at + 1);
		print_around("C", summary_c, sc, at);
		print_around("kvm_rtdp", summary_r, sr, at);
		diff = 1;
	}
	for (e = 0; e < NR_EVENTS; e++) {
		size_t len = strlen(events[e]);

		for (i = 0; i < nc; i++)
			want[e] += !strncmp(c[i], events[e], len) && c[i][len] == ':';
		for (i = 0; i < nr; i++)
			got[e] += !strncmp(r[i], events[e], len) && r[i][len] == ':';
		printf("rtdp-report: trace %-26s C %6lu  kvm_rtdp %6lu%s\n", events[e],
		       want[e], got[e], want[e] == got[e] ? "" : "  different");
	}
	return diff;
}

int main(int argc, char *argv[])
{
	const char *file = rtdp_saved_file(argc, argv, "/tmp/rtdp_trace_test.c");
	unsigned long counts[NR_EVENTS] = {}, n, nc, nr;
	char path[256], **c, **r;
	unsigned int i;
	int diff;
	bool rust;
	FILE *out;

	TEST_REQUIRE(kvm_is_tdp_enabled());
	rust = rtdp_rust_column();
	pin_to_one_cpu();

	snprintf(path, sizeof(path), "%s%s", file, rust ? ".rust" : "");
	out = fopen(path, "w");
	TEST_ASSERT(out, "writing %s", path);
	n = workload(out, counts);
	fclose(out);

	if (rust) {
		c = read_lines(file, &nc);
		r = read_lines(path, &nr);
		diff = compare(c, nc, r, nr);
	} else {
		for (i = 0; i < NR_EVENTS; i++)
			printf("rtdp-report: trace %-26s C %6lu\n", events[i], counts[i]);
		diff = 0;
	}
	for (i = 0; i < NR_EVENTS; i++)
		TEST_ASSERT(counts[i], "%s never fired", events[i]);
	TEST_ASSERT(!diff, "the kvm_rtdp trace differs from the C TDP MMU's (%s, %s)", file,
		    path);
	if (rust)
		printf("rtdp_trace_test: PASS (%lu events as on C)\n", n);
	else
		printf("rtdp_trace_test: %lu events saved for the kvm_rtdp column in %s\n", n,
		       file);
	return 0;
}
