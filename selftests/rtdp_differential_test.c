// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_differential_test: kvm_rtdp builds the same TDP page tables as the
 * C TDP MMU, entry for entry, under one seeded random sequence of
 * operations.
 *
 * One process creates two VMs in the same boot: the first while
 * kvm_rtdp/bind_new_vms is N, so that it runs on kvm.ko's built-in TDP
 * MMU, the second while it is Y, on kvm_rtdp (each VM's debugfs "tdp_mmu"
 * must say so).  Both get the same memslots and the same guest, and every
 * step of the sequence is applied to both:
 *
 *   - guest reads, writes and instruction fetches of 1-16 pages of a
 *     memslot backed by 4 KiB pages, by THP or by 2 MiB hugetlb pages, at
 *     the slot's address or at its other one (then MMIO exits);
 *   - MADV_DONTNEED and an mprotect() round trip of host ranges (MMU
 *     notifier invalidations), page_idle aging of a host range;
 *   - dirty logging on and off, GET_DIRTY_LOG (the two bitmaps must be
 *     equal) and CLEAR_DIRTY_LOG with random masks (manual protection);
 *   - memslot moves between two addresses, deletion and re-creation;
 *   - KVM_PRE_FAULT_MEMORY of a range (the same result on both);
 *   - NX huge pages: nx_huge_pages is on, so a fetch from a huge page
 *     splits it; a recovery step lets the recovery worker zap the split
 *     pages of both VMs (nx_lpage_splits back to 0) and stops it again.
 *
 * After every step both VMs' page tables are read through the per-VM
 * "tdp_mmu_dump" debugfs file of kvm.ko (patch 0011), the same C code for
 * both MMUs, and compared: the same roots (address space, role), and for
 * every gfn the same entry or none: level and every SPTE bit (permissions,
 * memory type, Accessed, Dirty, the software bits, MMIO SPTEs whole with
 * their generation), the pfn excepted.  The pfn of every present leaf that
 * changed in the step, and of all of them every 64 steps and at the end,
 * must be the one the host maps at that guest address (pagemap): the
 * two VMs have their own memory.  The MMIO exits of each step must be the
 * same number.
 *
 * On a difference the test prints the seed, the step, the operation and
 * the differing entries of both VMs, and fails.
 *
 * Usage: rtdp_differential_test [-s SEED[,SEED...]] [-n OPS] [-v]
 * Defaults: -s 1 -n 1000.  Runs in the kvm_rtdp column only; needs 10
 * free 2 MiB hugetlb pages (run it through rtdp_hugetlb.sh 10) and root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_util.h"

#define TEST_BASE	BIT_ULL(32)
#define AWAY_OFFSET	(256ULL << 20)	/* a slot's other address */
#define MMIO_GPA	(TEST_BASE + (128ULL << 20))	/* never a memslot */
#define MMIO_PAGES	512
#define WINDOW		(2 * AWAY_OFFSET)	/* every test address is in it */

#define PFN_MASK	GENMASK_ULL(51, 12)
#define SPTE_PRESENT	BIT_ULL(11)	/* SPTE_MMU_PRESENT_MASK, spte.h */

#define BIND_KNOB	"/sys/kernel/debug/kvm_rtdp/bind_new_vms"
#define KVM_PARAMS	"/sys/module/kvm/parameters/"

struct slot {
	const char *name;
	u32 id;
	enum vm_mem_backing_src_type src;
	u64 home;		/* gpa when not moved away */
	u64 pages;		/* 4 KiB pages */
	u64 align;		/* pages host operations are aligned to */
	bool away;
	bool logging;
};

static struct slot slots[] = {
	{ "4k", 10, VM_MEM_SRC_ANONYMOUS, TEST_BASE, 512, 1 },
	{ "thp", 11, VM_MEM_SRC_ANONYMOUS_THP, TEST_BASE + (16ULL << 20), 2048, 1 },
	{ "hugetlb", 12, VM_MEM_SRC_ANONYMOUS_HUGETLB, TEST_BASE + (32ULL << 20), 2048, 512 },
	/* Backed by a memfd: holes can be punched in them. */
	{ "shmem", 13, VM_MEM_SRC_SHMEM, TEST_BASE + (48ULL << 20), 512, 1 },
	{ "shared-hugetlb", 14, VM_MEM_SRC_SHARED_HUGETLB, TEST_BASE + (64ULL << 20), 1024, 512 },
};

static bool is_hugetlb(const struct slot *s)
{
	return s->src == VM_MEM_SRC_ANONYMOUS_HUGETLB || s->src == VM_MEM_SRC_SHARED_HUGETLB;
}

static bool is_shared(const struct slot *s)
{
	return s->src == VM_MEM_SRC_SHMEM || s->src == VM_MEM_SRC_SHARED_HUGETLB;
}

#define NR_SLOTS ARRAY_SIZE(slots)

enum guest_op { G_READ, G_WRITE, G_EXEC };

struct guest_cmd {
	u64 op;
	u64 gva;
	u64 pages;
};

static struct guest_cmd cmd;

static void guest_code(void)
{
	u64 i, a;

	for (;;) {
		GUEST_SYNC(0);
		for (i = 0; i < cmd.pages; i++) {
			a = cmd.gva + i * PAGE_SIZE;
			switch (cmd.op) {
			case G_READ:
				READ_ONCE(*(u64 *)a);
				break;
			case G_WRITE:
				WRITE_ONCE(*(u64 *)a, a);
				break;
			case G_EXEC:
				WRITE_ONCE(*(u8 *)a, 0xc3);	/* ret */
				((void (*)(void))a)();
				break;
			}
		}
	}
}

/* One dump line: a root ("root AS ROLE": level 0, spte = role) or an entry. */
struct entry {
	u32 as_id;
	u32 level;
	u64 gfn;
	u64 spte;
};

struct dump {
	struct entry *e;
	unsigned long n, size;
};

struct side {
	const char *mmu;	/* what its "tdp_mmu" must say */
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	char dump_path[128];
	struct dump now, before;
	int pagemap;
	unsigned long mmio;
};

/* What a run reports. */
struct tally {
	unsigned long ops[16];
	unsigned long entries;	/* entries compared, over all steps */
	unsigned long pfns;	/* leaf pfns checked against pagemap */
	unsigned long leaves_peak;
	unsigned long mmio_sptes;	/* MMIO SPTEs seen, over all steps */
	unsigned long huge;	/* huge leaves seen, over all steps */
	unsigned long bitmaps;	/* dirty bitmaps compared */
	unsigned long aged[2];	/* leaves made old, [huge] (count_effects()) */
	unsigned long wrprot[2];	/* leaves write-protected, [huge] */
	unsigned long huge_removed;	/* huge leaves zapped or split */
	unsigned long nx_recovered;	/* NX-split pages the recovery steps found */
	unsigned long differences;
};

static const char *const op_names[] = {
	"access", "dontneed", "mprotect", "log-toggle", "get-log", "clear-log",
	"move", "recreate", "pre-fault", "age", "nx-recover", "remap", "mremap", "punch-hole",
};

enum {
	OP_ACCESS, OP_DONTNEED, OP_MPROTECT, OP_LOG, OP_GET, OP_CLEAR, OP_MOVE,
	OP_RECREATE, OP_PREFAULT, OP_AGE, OP_NX_RECOVER, OP_REMAP, OP_MREMAP, OP_PUNCH, NR_OPS
};

/* Relative weights of the operations. */
static const unsigned int weights[NR_OPS] = { 50, 5, 4, 5, 5, 6, 3, 2, 5, 8, 2, 4, 3, 4 };

static u64 rng;

static u64 rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static u64 rnd_below(u64 n)
{
	return rnd() % n;
}

static bool verbose;
static char step_text[256];
static char history[8][256];	/* the steps before, printed on a difference */
static unsigned long step_nr;
static u64 seed_now;

/*
 * Host settings the test changes, restored at exit (also when an assertion
 * ends the test).  Besides NX huge pages: the host must not change one
 * VM's memory behind the sequence's back, or the VMs differ for a reason
 * that is not the MMU's.  khugepaged would collapse the THP slot's 4 KiB
 * pages (left by MADV_DONTNEED) in one VM before the other, and proactive
 * compaction would migrate pages: both invalidate.  khugepaged is left
 * scanning one page every ten minutes, and proactive compaction is off.
 */
struct host_setting {
	const char *path, *value;
	char saved[32];
	bool changed;
};

#define KHUGEPAGED "/sys/kernel/mm/transparent_hugepage/khugepaged/"

static struct host_setting host_settings[] = {
	{ KHUGEPAGED "pages_to_scan", "1" },
	{ KHUGEPAGED "scan_sleep_millisecs", "600000" },
	{ KHUGEPAGED "alloc_sleep_millisecs", "600000" },
	{ "/proc/sys/vm/compaction_proactiveness", "0" },
	{ KVM_PARAMS "nx_huge_pages_recovery_ratio", "0" },
	{ KVM_PARAMS "nx_huge_pages_recovery_period_ms", NULL },
	{ KVM_PARAMS "nx_huge_pages", "1" },
	{ KVM_PARAMS "eager_page_split", NULL },	/* per seed */
};

/* Count a difference and print it after where it happened. */
static void __printf(2, 3) difference(struct tally *t, const char *fmt, ...)
{
	va_list ap;

	printf("rtdp-report: DIFFERENCE: seed %llu, step %lu (%s): ",
	       (unsigned long long)seed_now, step_nr, step_text);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	t->differences++;
}

static void restore(void)
{
	int i;

	if (!access(BIND_KNOB, W_OK))
		rtdp_write_file(BIND_KNOB, "Y");
	for (i = ARRAY_SIZE(host_settings) - 1; i >= 0; i--)
		if (host_settings[i].changed)
			rtdp_write_file(host_settings[i].path, host_settings[i].saved);
}

/*
 * Save every host setting and make the test's; false if NX huge pages
 * cannot be turned on (kvm.nx_huge_pages=never).
 */
static bool host_setup(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(host_settings); i++) {
		struct host_setting *h = &host_settings[i];

		rtdp_read_line(h->path, h->saved, sizeof(h->saved));
		h->changed = true;	/* restore even a value the test did not set */
		if (!strcmp(h->saved, "never"))
			return false;
		if (h->value)
			rtdp_write_file(h->path, h->value);
	}
	return true;
}

static u64 slot_gpa(struct slot *s)
{
	return s->home + (s->away ? AWAY_OFFSET : 0);
}

static void read_dump(struct side *sd)
{
	struct dump *d = &sd->now;
	unsigned long long gfn, spte;
	unsigned int as_id, level;
	char line[128];
	FILE *f;

	f = fopen(sd->dump_path, "r");
	TEST_ASSERT(f, "open %s (patch 0011 missing?)", sd->dump_path);
	d->n = 0;
	while (fgets(line, sizeof(line), f)) {
		struct entry e = {};

		if (sscanf(line, "root %u %llx", &as_id, &spte) == 2) {
			e.as_id = as_id;
			e.spte = spte;
		} else {
			TEST_ASSERT(sscanf(line, "%u %llx %u %llx", &as_id, &gfn, &level,
					   &spte) == 4, "%s: bad line: %s", sd->dump_path, line);
			e = (struct entry){ as_id, level, gfn, spte };
		}
		if (d->n == d->size) {
			d->size = d->size ? 2 * d->size : 4096;
			d->e = realloc(d->e, d->size * sizeof(*d->e));
			TEST_ASSERT(d->e, "realloc");
		}
		d->e[d->n++] = e;
	}
	fclose(f);
}

static bool is_leaf(const struct entry *e)
{
	return e->level && e->spte & SPTE_PRESENT;
}

/* An entry as compared between the VMs: a present leaf without its pfn. */
static u64 compared_value(const struct entry *e)
{
	return is_leaf(e) ? e->spte & ~PFN_MASK : e->spte;
}

static void print_entry(const char *who, const struct entry *e)
{
	if (!e)
		printf("rtdp-report:   %-8s (none)\n", who);
	else if (!e->level)
		printf("rtdp-report:   %-8s root as %u role %llx\n", who, e->as_id,
		       (unsigned long long)e->spte);
	else
		printf("rtdp-report:   %-8s as %u gfn %llx level %u spte %llx\n", who, e->as_id,
		       (unsigned long long)e->gfn, e->level, (unsigned long long)e->spte);
}

static void report_difference(struct tally *t, const struct entry *c, const struct entry *r)
{
	if (t->differences >= 16) {
		t->differences++;
		return;
	}
	difference(t, "page tables");
	print_entry("C", c);
	print_entry("kvm_rtdp", r);
}

/* Order of entries in a dump: root by root, then gfn. */
static int entry_cmp(const struct entry *a, const struct entry *b)
{
	if (a->gfn != b->gfn)
		return a->gfn < b->gfn ? -1 : 1;
	return 0;
}

/* Compare the two dumps; differences are counted and printed. */
static void compare_dumps(struct side *c, struct side *r, struct tally *t)
{
	struct dump *dc = &c->now, *dr = &r->now;
	unsigned long i = 0, j = 0, leaves = 0;

	while (i < dc->n || j < dr->n) {
		struct entry *a = i < dc->n ? &dc->e[i] : NULL;
		struct entry *b = j < dr->n ? &dr->e[j] : NULL;
		int order;

		/* A root line starts a section in both or it is a difference. */
		if (a && b && !a->level && !b->level) {
			if (a->as_id != b->as_id || a->spte != b->spte)
				report_difference(t, a, b);
			i++, j++;
			continue;
		}
		if (!a || !b || !a->level || !b->level) {
			/* One dump has a root or entries the other has not. */
			if (a && (!b || !b->level) && a->level) {
				report_difference(t, a, NULL);
				i++;
			} else if (b && (!a || !a->level) && b->level) {
				report_difference(t, NULL, b);
				j++;
			} else {
				report_difference(t, a, b);
				i += !!a, j += !!b;
			}
			continue;
		}
		order = entry_cmp(a, b);
		if (order < 0) {
			report_difference(t, a, NULL);
			i++;
		} else if (order > 0) {
			report_difference(t, NULL, b);
			j++;
		} else {
			if (a->as_id != b->as_id || a->level != b->level ||
			    compared_value(a) != compared_value(b))
				report_difference(t, a, b);
			leaves += is_leaf(a);
			t->mmio_sptes += !(a->spte & SPTE_PRESENT);
			t->huge += is_leaf(a) && a->level > 1;
			t->entries++;
			i++, j++;
		}
	}
	if (leaves > t->leaves_peak)
		t->leaves_peak = leaves;
}

/* The entry of @d for @gfn at @level, or NULL (@d is in dump order). */
static const struct entry *find_entry(const struct dump *d, u64 gfn, u32 level)
{
	unsigned long lo = 0, hi = d->n;

	/* Entries of one root are sorted by gfn; these VMs have one root. */
	while (lo < hi) {
		unsigned long mid = (lo + hi) / 2;

		if (!d->e[mid].level || d->e[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < d->n && d->e[lo].gfn == gfn && d->e[lo].level == level)
		return &d->e[lo];
	return NULL;
}

static bool unchanged(const struct dump *d, const struct entry *e)
{
	const struct entry *old = find_entry(d, e->gfn, e->level);

	return old && old->spte == e->spte;
}

/*
 * What the step did to the C VM's page tables, counted so that a run shows
 * which MMU paths the comparison covered: leaves made old by aging and
 * write-protected (4 KiB and huge), huge leaves removed.  NPT bits: Accessed
 * is bit 5, Writable bit 1.
 */
static void count_effects(const struct side *c, struct tally *t)
{
	unsigned long i;

	for (i = 0; i < c->before.n; i++) {
		const struct entry *old = &c->before.e[i], *now;
		bool huge = old->level > 1;

		if (!is_leaf(old))
			continue;
		now = find_entry(&c->now, old->gfn, old->level);
		if (!now || !is_leaf(now) || (now->spte & PFN_MASK) != (old->spte & PFN_MASK)) {
			t->huge_removed += huge;
			continue;
		}
		if (old->spte & BIT_ULL(5) && !(now->spte & BIT_ULL(5)))
			t->aged[huge]++;
		if (old->spte & BIT_ULL(1) && !(now->spte & BIT_ULL(1)))
			t->wrprot[huge]++;
	}
}

/*
 * The host address of @gpa, or 0 if no memslot has it.  The test slots are
 * looked up where the test put them: kvm_util keeps them at their home
 * address (see set_slot()).
 */
static u64 gpa_to_hva(struct kvm_vm *vm, u64 gpa)
{
	struct userspace_mem_region *region;
	unsigned int i;
	int bkt;

	for (i = 0; i < NR_SLOTS; i++) {
		struct slot *s = &slots[i];

		if (gpa >= slot_gpa(s) && gpa < slot_gpa(s) + s->pages * PAGE_SIZE)
			return (u64)memslot2region(vm, s->id)->host_mem + gpa - slot_gpa(s);
	}
	if (gpa >= TEST_BASE && gpa < TEST_BASE + WINDOW)
		return 0;
	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node) {
		u64 base = region->region.guest_phys_addr;

		if (gpa >= base && gpa - base < region->region.memory_size)
			return (u64)region->host_mem + (gpa - base);
	}
	return 0;
}

/*
 * The pfn of each present leaf of @sd's dump (of those that changed since
 * the last dump, unless @all) must be what the host maps at its gfn.
 */
static void check_pfns(struct side *sd, bool all, struct tally *t)
{
	unsigned long i;

	for (i = 0; i < sd->now.n; i++) {
		struct entry *e = &sd->now.e[i];
		u64 hva, pm, pfn, want;

		if (!is_leaf(e) || e->as_id || (!all && unchanged(&sd->before, e)))
			continue;
		hva = gpa_to_hva(sd->vm, e->gfn << 12);
		if (!hva) {
			difference(t, "%s VM: no memslot for gfn %llx level %u spte %llx",
				   sd->mmu, (unsigned long long)e->gfn, e->level,
				   (unsigned long long)e->spte);
			continue;
		}
		TEST_ASSERT(pread(sd->pagemap, &pm, 8, hva / getpagesize() * 8) == 8,
			    "pagemap");
		want = pm & BIT_ULL(63) ? pm & GENMASK_ULL(54, 0) : 0;
		pfn = (e->spte & PFN_MASK) >> 12;
		if (pfn != want)
			difference(t, "%s VM: gfn %llx level %u spte %llx, pagemap: pfn %llx",
				   sd->mmu, (unsigned long long)e->gfn, e->level,
				   (unsigned long long)e->spte, (unsigned long long)want);
		t->pfns++;
	}
}

static void run_guest(struct side *sd, struct guest_cmd *c)
{
	cmd = *c;
	sync_global_to_guest(sd->vm, cmd);
	sd->mmio += rtdp_run_answering_mmio(sd->vcpu, UCALL_SYNC, TEST_BASE, WINDOW);
}

static void tdp_mmu_of(struct side *sd, char *name, size_t size)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/tdp_mmu", getpid(),
		 sd->vm->fd);
	rtdp_read_line(path, name, size);
}

static void create_side(struct side *sd, const char *mmu)
{
	char name[64];
	unsigned int i;

	rtdp_write_file(BIND_KNOB, strcmp(mmu, "kvm_rtdp") ? "N" : "Y");
	sd->mmu = mmu;
	sd->vm = vm_create_with_one_vcpu(&sd->vcpu, guest_code);
	tdp_mmu_of(sd, name, sizeof(name));
	TEST_ASSERT(!strcmp(name, mmu), "a VM created for the %s TDP MMU is served by %s",
		    mmu, name);
	vm_enable_cap(sd->vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
	for (i = 0; i < NR_SLOTS; i++) {
		struct slot *s = &slots[i];

		vm_userspace_mem_region_add(sd->vm, s->src, s->home, s->id, s->pages, 0);
		virt_map(sd->vm, s->home, s->home, s->pages);
		virt_map(sd->vm, s->home + AWAY_OFFSET, s->home + AWAY_OFFSET, s->pages);
	}
	virt_map(sd->vm, MMIO_GPA, MMIO_GPA, MMIO_PAGES);
	snprintf(sd->dump_path, sizeof(sd->dump_path), "/sys/kernel/debug/kvm/%d-%d/tdp_mmu_dump",
		 getpid(), sd->vm->fd);
	sd->pagemap = open("/proc/self/pagemap", O_RDONLY);
	TEST_ASSERT(sd->pagemap >= 0, "open /proc/self/pagemap");
	sd->mmio = 0;
	/* To the guest's first ucall: its code, stack and ucall pages mapped. */
	rtdp_run_answering_mmio(sd->vcpu, UCALL_SYNC, TEST_BASE, WINDOW);
}

static void free_side(struct side *sd)
{
	kvm_vm_free(sd->vm);
	close(sd->pagemap);
	free(sd->now.e);
	free(sd->before.e);
	memset(sd, 0, sizeof(*sd));
}

/* A random range of @s in pages, aligned to the slot's backing. */
static void pick_range(struct slot *s, u64 max, u64 *first, u64 *n)
{
	u64 units = s->pages / s->align;

	*first = rnd_below(units) * s->align;
	*n = (1 + rnd_below(max)) * s->align;
	if (*first + *n > s->pages)
		*n = s->pages - *first;
}

static void *host_range(struct side *sd, struct slot *s, u64 first)
{
	return memslot2region(sd->vm, s->id)->host_mem + first * PAGE_SIZE;
}

/*
 * Give KVM @s's address and flags as the test has them.  kvm_util's
 * vm_mem_region_move() does not re-sort its tree of regions by address,
 * after which it finds none, so kvm_util keeps every test slot at its home
 * address and this calls the ioctl itself: a move (KVM_MR_MOVE) or a flags
 * change (KVM_MR_FLAGS_ONLY).
 */
static void set_slot(struct side *sd, struct slot *s)
{
	struct kvm_userspace_memory_region2 m = memslot2region(sd->vm, s->id)->region;

	m.guest_phys_addr = slot_gpa(s);
	m.flags = s->logging ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	vm_ioctl(sd->vm, KVM_SET_USER_MEMORY_REGION2, &m);
}

/*
 * The page of @s where the C VM has a huge leaf, picked at random (the
 * same one for both VMs, whose tables are equal), or @fallback if none.
 */
static u64 huge_leaf_in(struct side *c, struct slot *s, u64 fallback)
{
	u64 start = slot_gpa(s) >> 12, found[16];
	unsigned long i, n = 0;

	for (i = 0; i < c->now.n && n < ARRAY_SIZE(found); i++) {
		struct entry *e = &c->now.e[i];

		if (is_leaf(e) && e->level > 1 && e->gfn >= start && e->gfn < start + s->pages)
			found[n++] = e->gfn - start;
	}
	return n ? found[rnd_below(n)] : fallback;
}

/*
 * Mark the host pages of @n pages at @first of @s idle: the MMU notifier
 * ages them.  mlock() and munlock() first move them out of this CPU's LRU
 * add batch, where page_idle would skip them.
 */
static void age(struct side *sd, struct slot *s, u64 first, u64 n)
{
	int idle = open("/sys/kernel/mm/page_idle/bitmap", O_WRONLY);
	void *hva = host_range(sd, s, first);
	u64 i, pm, pfn, bit;

	__TEST_REQUIRE(idle >= 0, "no /sys/kernel/mm/page_idle (CONFIG_IDLE_PAGE_TRACKING)");
	TEST_ASSERT(!mlock(hva, n * PAGE_SIZE), "mlock: %s", strerror(errno));
	TEST_ASSERT(!munlock(hva, n * PAGE_SIZE), "munlock: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		u64 a = (u64)hva + i * PAGE_SIZE;

		TEST_ASSERT(pread(sd->pagemap, &pm, 8, a / getpagesize() * 8) == 8, "pagemap");
		pfn = pm & GENMASK_ULL(54, 0);
		if (!(pm & BIT_ULL(63)) || !pfn)
			continue;
		bit = BIT_ULL(pfn % 64);
		TEST_ASSERT(pwrite(idle, &bit, 8, pfn / 64 * 8) == 8, "page_idle: %s",
			    strerror(errno));
	}
	close(idle);
}

static int pre_fault(struct side *sd, u64 gpa, u64 size)
{
	struct kvm_pre_fault_memory range = { .gpa = gpa, .size = size };
	int r;

	do {
		r = __vcpu_ioctl(sd->vcpu, KVM_PRE_FAULT_MEMORY, &range);
	} while (r && errno == EINTR);
	return r ? -errno : 0;
}

static void wait_nx_recovered(struct side *sides)
{
	int i, tries;

	for (i = 0; i < 2; i++) {
		for (tries = 0; tries < 3000; tries++) {
			if (!vm_get_stat(sides[i].vm, nx_lpage_splits))
				break;
			usleep(10000);
		}
		TEST_ASSERT(!vm_get_stat(sides[i].vm, nx_lpage_splits),
			    "%s VM: NX huge pages not recovered after 30 s", sides[i].mmu);
	}
}

/*
 * One random operation, applied to both VMs in turn (C first); its
 * description in step_text.
 */
/*
 * Map @n pages of @s from page @first anew, at the same host address:
 * anonymous memory gets new (zero) pages, a memfd its pages at the same
 * offset.  The host's munmap() zaps what the VMs map there.
 */
static void map_anew(struct side *sd, struct slot *s, u64 first, u64 n)
{
	struct userspace_mem_region *r = memslot2region(sd->vm, s->id);
	void *hva = host_range(sd, s, first);
	int flags = MAP_FIXED | (is_shared(s) ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS);
	off_t off = (char *)hva - (char *)r->mmap_start;

	if (s->src == VM_MEM_SRC_ANONYMOUS_HUGETLB)
		flags |= MAP_HUGETLB;
	TEST_ASSERT(!munmap(hva, n * PAGE_SIZE), "munmap: %s", strerror(errno));
	TEST_ASSERT(mmap(hva, n * PAGE_SIZE, PROT_READ | PROT_WRITE, flags,
			 is_shared(s) ? r->fd : -1, is_shared(s) ? off : 0) == hva,
		    "mmap(MAP_FIXED) of %s pages %llu+%llu: %s", s->name,
		    (unsigned long long)first, (unsigned long long)n, strerror(errno));
	if (s->src == VM_MEM_SRC_ANONYMOUS_THP)
		TEST_ASSERT(!madvise(hva, n * PAGE_SIZE, MADV_HUGEPAGE), "MADV_HUGEPAGE");
}

/*
 * Move the pages at @from of @s over those at @to with mremap(), and map
 * new ones at @from: the gfns of @to get other pfns, those of @from none.
 */
static void move_pages(struct side *sd, struct slot *s, u64 from, u64 to, u64 n)
{
	void *src = host_range(sd, s, from), *dst = host_range(sd, s, to);

	TEST_ASSERT(mremap(src, n * PAGE_SIZE, n * PAGE_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
			   dst) == dst, "mremap of %s pages %llu+%llu to %llu: %s", s->name,
		    (unsigned long long)from, (unsigned long long)n, (unsigned long long)to,
		    strerror(errno));
	/* mremap() left nothing at @from: map_anew()'s munmap() is a no-op there. */
	map_anew(sd, s, from, n);
}

static void punch_hole(struct side *sd, struct slot *s, u64 first, u64 n)
{
	struct userspace_mem_region *r = memslot2region(sd->vm, s->id);
	off_t off = (char *)host_range(sd, s, first) - (char *)r->mmap_start;

	TEST_ASSERT(!fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
			       n * PAGE_SIZE), "PUNCH_HOLE in %s pages %llu+%llu: %s", s->name,
		    (unsigned long long)first, (unsigned long long)n, strerror(errno));
}

static int one_step(struct side *sides, struct tally *t, bool nx)
{
	unsigned int total = 0, pick, op, i;
	unsigned long *bm[2] = {};
	struct slot *s = &slots[rnd_below(NR_SLOTS)];
	u64 first, n, bm_words = s->pages / 64;
	int results[2] = {};

	for (op = 0; op < NR_OPS; op++)
		total += weights[op];
	pick = rnd_below(total);
	for (op = 0; pick >= weights[op]; op++)
		pick -= weights[op];
	if (op == OP_NX_RECOVER && !nx)
		op = OP_ACCESS;

	switch (op) {
	case OP_ACCESS: {
		struct guest_cmd c = { .op = rnd_below(3) };
		bool mmio = !rnd_below(8), other = !rnd_below(5);
		u64 base;

		c.pages = 1 + rnd_below(16);
		if (mmio) {
			first = rnd_below(MMIO_PAGES - c.pages);
			base = MMIO_GPA;
		} else {
			first = rnd_below(s->pages - c.pages);
			base = other ? s->home + (s->away ? 0 : AWAY_OFFSET) : slot_gpa(s);
		}
		if (c.op == G_EXEC && (mmio || other))
			c.op = G_READ;	/* no fetches from MMIO */
		c.gva = base + first * PAGE_SIZE;
		snprintf(step_text, sizeof(step_text), "guest %s of %llu pages at gpa %llx (%s)",
			 c.op == G_READ ? "read" : c.op == G_WRITE ? "write" : "fetch",
			 (unsigned long long)c.pages, (unsigned long long)c.gva,
			 mmio ? "mmio" : other ? "the slot's other address" : s->name);
		for (i = 0; i < 2; i++)
			run_guest(&sides[i], &c);
		break;
	}
	case OP_DONTNEED:
	case OP_MPROTECT:
		pick_range(s, op == OP_DONTNEED ? 32 : 8, &first, &n);
		/* Half of them on whole THPs, the others split the THP mapping. */
		if (s->src == VM_MEM_SRC_ANONYMOUS_THP && rnd_below(2)) {
			first &= ~511ULL;
			n = 512;
		}
		snprintf(step_text, sizeof(step_text), "%s of pages %llu+%llu of %s",
			 op == OP_DONTNEED ? "MADV_DONTNEED" : "mprotect(READ) and back",
			 (unsigned long long)first, (unsigned long long)n, s->name);
		for (i = 0; i < 2; i++) {
			void *hva = host_range(&sides[i], s, first);

			if (op == OP_DONTNEED) {
				TEST_ASSERT(!madvise(hva, n * PAGE_SIZE, MADV_DONTNEED),
					    "MADV_DONTNEED: %s", strerror(errno));
			} else {
				TEST_ASSERT(!mprotect(hva, n * PAGE_SIZE, PROT_READ) &&
					    !mprotect(hva, n * PAGE_SIZE, PROT_READ | PROT_WRITE),
					    "mprotect: %s", strerror(errno));
			}
		}
		break;
	case OP_LOG:
		s->logging = !s->logging;
		snprintf(step_text, sizeof(step_text), "dirty logging %s on %s",
			 s->logging ? "on" : "off", s->name);
		for (i = 0; i < 2; i++)
			set_slot(&sides[i], s);
		break;
	case OP_GET:
	case OP_CLEAR:
		if (!s->logging) {
			snprintf(step_text, sizeof(step_text), "nothing (%s not logging)",
				 s->name);
			break;
		}
		first = rnd_below(bm_words) * 64;
		n = (1 + rnd_below(bm_words - first / 64)) * 64;
		snprintf(step_text, sizeof(step_text), "%s on %s, pages %llu+%llu",
			 op == OP_GET ? "GET_DIRTY_LOG" : "CLEAR_DIRTY_LOG", s->name,
			 (unsigned long long)first, (unsigned long long)n);
		for (i = 0; i < 2; i++) {
			bm[i] = calloc(bm_words, sizeof(unsigned long));
			TEST_ASSERT(bm[i], "calloc");
		}
		if (op == OP_CLEAR) {
			for (i = 0; i < n / 64; i++)
				bm[0][i] = rnd() & rnd();
			memcpy(bm[1], bm[0], bm_words * sizeof(unsigned long));
		}
		for (i = 0; i < 2; i++) {
			if (op == OP_GET)
				kvm_vm_get_dirty_log(sides[i].vm, s->id, bm[i]);
			else
				kvm_vm_clear_dirty_log(sides[i].vm, s->id, bm[i], first, n);
		}
		if (op == OP_GET) {
			for (i = 0; i < bm_words; i++) {
				if (bm[0][i] == bm[1][i])
					continue;
				difference(t, "dirty bitmap word %u: C %lx, kvm_rtdp %lx", i,
					   bm[0][i], bm[1][i]);
			}
			t->bitmaps++;
		}
		free(bm[0]);
		free(bm[1]);
		break;
	case OP_MOVE:
		s->away = !s->away;
		snprintf(step_text, sizeof(step_text), "move %s to gpa %llx", s->name,
			 (unsigned long long)slot_gpa(s));
		for (i = 0; i < 2; i++)
			set_slot(&sides[i], s);
		break;
	case OP_RECREATE:
		snprintf(step_text, sizeof(step_text), "delete %s and create it again at gpa %llx",
			 s->name, (unsigned long long)slot_gpa(s));
		for (i = 0; i < 2; i++) {
			vm_mem_region_delete(sides[i].vm, s->id);
			vm_userspace_mem_region_add(sides[i].vm, s->src, s->home, s->id,
						    s->pages, 0);
			if (s->away || s->logging)
				set_slot(&sides[i], s);
		}
		break;
	case OP_PREFAULT: {
		bool mmio = !rnd_below(6);
		u64 gpa;

		pick_range(s, 16, &first, &n);
		gpa = mmio ? MMIO_GPA + first * PAGE_SIZE : slot_gpa(s) + first * PAGE_SIZE;
		snprintf(step_text, sizeof(step_text), "pre-fault of %llu pages at gpa %llx",
			 (unsigned long long)n, (unsigned long long)gpa);
		for (i = 0; i < 2; i++)
			results[i] = pre_fault(&sides[i], gpa, n * PAGE_SIZE);
		if (results[0] != results[1])
			difference(t, "C returned %d, kvm_rtdp %d", results[0], results[1]);
		break;
	}
	case OP_AGE:
		/* hugetlb pages are not on an LRU: age THPs instead. */
		if (is_hugetlb(s))
			s = &slots[1];
		pick_range(s, 16, &first, &n);
		/*
		 * mlock() of part of a THP splits its mapping: age whole THPs,
		 * or the host zaps the huge leaves first.
		 */
		if (s->src == VM_MEM_SRC_ANONYMOUS_THP) {
			first = huge_leaf_in(&sides[0], s, first) & ~511ULL;
			n = 512;
		}
		snprintf(step_text, sizeof(step_text), "page_idle aging of pages %llu+%llu of %s",
			 (unsigned long long)first, (unsigned long long)n, s->name);
		for (i = 0; i < 2; i++)
			age(&sides[i], s, first, n);
		break;
	case OP_NX_RECOVER:
		first = vm_get_stat(sides[0].vm, nx_lpage_splits);
		snprintf(step_text, sizeof(step_text), "NX recovery (%llu and %llu split)",
			 (unsigned long long)first,
			 (unsigned long long)vm_get_stat(sides[1].vm, nx_lpage_splits));
		t->nx_recovered += first;
		rtdp_write_file(KVM_PARAMS "nx_huge_pages_recovery_period_ms", "10");
		rtdp_write_file(KVM_PARAMS "nx_huge_pages_recovery_ratio", "1");
		wait_nx_recovered(sides);
		rtdp_write_file(KVM_PARAMS "nx_huge_pages_recovery_ratio", "0");
		break;
	case OP_REMAP:
		pick_range(s, 32, &first, &n);
		snprintf(step_text, sizeof(step_text),
			 "munmap and mmap(MAP_FIXED) of pages %llu+%llu of %s",
			 (unsigned long long)first, (unsigned long long)n, s->name);
		for (i = 0; i < 2; i++)
			map_anew(&sides[i], s, first, n);
		break;
	case OP_MREMAP: {
		u64 below, above, to;

		if (is_hugetlb(s))
			s = &slots[rnd_below(2)];	/* 4k or thp */
		pick_range(s, 16, &first, &n);
		/*
		 * Another range of the slot, of the same size, not overlapping:
		 * one of the @below starts before @first or the @above after it
		 * (with n at most a quarter of the slot, there is one).
		 */
		n = min(n, s->pages / 4);
		below = first >= n ? first - n + 1 : 0;
		above = s->pages - n >= first + n ? s->pages - n - (first + n) + 1 : 0;
		to = rnd_below(below + above);
		if (to >= below)
			to = first + n + (to - below);
		snprintf(step_text, sizeof(step_text),
			 "mremap of pages %llu+%llu of %s over %llu, new pages at %llu",
			 (unsigned long long)first, (unsigned long long)n, s->name,
			 (unsigned long long)to, (unsigned long long)first);
		for (i = 0; i < 2; i++)
			move_pages(&sides[i], s, first, to, n);
		break;
	}
	case OP_PUNCH:
		if (!is_shared(s))
			s = &slots[3 + rnd_below(2)];	/* shmem or shared-hugetlb */
		pick_range(s, 32, &first, &n);
		snprintf(step_text, sizeof(step_text),
			 "fallocate(PUNCH_HOLE) of pages %llu+%llu of %s",
			 (unsigned long long)first, (unsigned long long)n, s->name);
		for (i = 0; i < 2; i++)
			punch_hole(&sides[i], s, first, n);
		break;
	}
	t->ops[op]++;
	return op;
}

/* Dump both VMs, compare them, check pfns; false on a difference. */
static bool check_step(struct side *sides, struct tally *t, bool all_pfns)
{
	unsigned long before = t->differences;
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct dump tmp = sides[i].before;

		sides[i].before = sides[i].now;
		sides[i].now = tmp;
		read_dump(&sides[i]);
	}
	compare_dumps(&sides[0], &sides[1], t);
	count_effects(&sides[0], t);
	for (i = 0; i < 2; i++)
		check_pfns(&sides[i], all_pfns, t);
	if (sides[0].mmio != sides[1].mmio)
		difference(t, "MMIO exits: C %lu, kvm_rtdp %lu", sides[0].mmio, sides[1].mmio);
	return t->differences == before;
}

static void run_seed(u64 seed, unsigned long ops, bool nx)
{
	struct side sides[2] = {};
	bool eager = seed & 1;
	struct tally t = {};
	unsigned long i;

	/*
	 * Odd seeds split huge pages when dirty logging starts, even ones
	 * write-protect them and split on the first write.
	 */
	rtdp_write_file(KVM_PARAMS "eager_page_split", eager ? "Y" : "N");
	seed_now = seed;
	rng = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (i = 0; i < NR_SLOTS; i++) {
		slots[i].away = false;
		slots[i].logging = false;
	}
	create_side(&sides[0], "builtin");
	create_side(&sides[1], "kvm_rtdp");
	rtdp_write_file(BIND_KNOB, "Y");

	snprintf(step_text, sizeof(step_text), "the VMs' first ucall");
	step_nr = 0;
	check_step(sides, &t, true);
	for (step_nr = 1; step_nr <= ops && !t.differences; step_nr++) {
		one_step(sides, &t, nx);
		if (verbose)
			printf("step %lu: %s\n", step_nr, step_text);
		if (!check_step(sides, &t, step_nr % 64 == 0 || step_nr == ops)) {
			printf("rtdp-report:   the steps before it:\n");
			for (i = step_nr > 8 ? step_nr - 8 : 1; i < step_nr; i++)
				printf("rtdp-report:   step %lu: %s\n", i, history[i % 8]);
		}
		memcpy(history[step_nr % 8], step_text, sizeof(step_text));
	}
	printf("rtdp-report: differential seed %llu: %lu operations, %lu differences\n",
	       (unsigned long long)seed, step_nr - 1, t.differences);
	printf("rtdp-report:   compared: %lu entries (peak %lu leaves), %lu huge, %lu MMIO;\n",
	       t.entries, t.leaves_peak, t.huge, t.mmio_sptes);
	printf("rtdp-report:   %lu pfns checked, %lu dirty bitmaps, %lu MMIO exits each\n",
	       t.pfns, t.bitmaps, sides[0].mmio);
	printf("rtdp-report:   operations:");
	for (i = 0; i < NR_OPS; i++)
		printf(" %s %lu", op_names[i], t.ops[i]);
	printf("\n");
	printf("rtdp-report:   eager page split %s, NX-split pages recovered %lu\n",
	       eager ? "on" : "off", t.nx_recovered);
	printf("rtdp-report:   C's tables: aged %lu 4K %lu huge leaves, write-protected\n",
	       t.aged[0], t.aged[1]);
	printf("rtdp-report:   %lu 4K %lu huge leaves, removed %lu huge leaves\n",
	       t.wrprot[0], t.wrprot[1], t.huge_removed);
	TEST_ASSERT(!t.differences,
		    "seed %llu: kvm_rtdp's page tables differ from the C TDP MMU's at step %lu (%s)",
		    (unsigned long long)seed, step_nr - 1, step_text);
	/* The comparison saw what it is there for. */
	TEST_ASSERT(t.entries && t.huge && t.mmio_sptes && t.pfns && t.aged[0] && t.aged[1] &&
		    t.wrprot[0] && (eager || t.wrprot[1]) && t.huge_removed &&
		    (!nx || t.nx_recovered) &&
		    (ops < 1000 || (t.ops[OP_REMAP] && t.ops[OP_MREMAP] && t.ops[OP_PUNCH])),
		    "seed %llu: a kind of change the comparison is for never happened",
		    (unsigned long long)seed);
	free_side(&sides[0]);
	free_side(&sides[1]);
}

int main(int argc, char *argv[])
{
	unsigned long ops = 1000, seeds = 0;
	char *seed_list = "1", *p;
	bool nx;
	int opt;

	while ((opt = getopt(argc, argv, "s:n:v")) != -1) {
		switch (opt) {
		case 's':
			seed_list = optarg;
			break;
		case 'n':
			ops = strtoul(optarg, NULL, 0);
			break;
		case 'v':
			verbose = true;
			break;
		default:
			printf("usage: %s [-s SEED[,SEED...]] [-n OPS] [-v]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}

	TEST_REQUIRE(kvm_is_tdp_enabled());
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PRE_FAULT_MEMORY));
	TEST_ASSERT(rtdp_rust_column(),
		    "kvm_rtdp must be loaded: the test compares it with the C TDP MMU");
	TEST_ASSERT(!access(BIND_KNOB, W_OK), "no %s", BIND_KNOB);
	atexit(restore);
	nx = host_setup();

	for (p = strtok(seed_list, ","); p; p = strtok(NULL, ","), seeds++)
		run_seed(strtoull(p, NULL, 0), ops, nx);
	printf("rtdp_differential_test: PASS (%lu seeds x %lu operations, 0 differences%s)\n",
	       seeds, ops, nx ? "" : "; NX huge pages were off");
	return 0;
}
