// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_failnth_test: every allocation made on kvm_rtdp's behalf fails once,
 * in turn, and nothing breaks.
 *
 * For each operation below, the test arms /proc/thread-self/fail-nth with
 * N = 1, 2, ... (failslab and fail_page_alloc, restricted by their stack
 * filter to a range of kernel text), performs the operation, and stops at
 * the first N the operation no longer reaches: every allocation in the
 * range has then been failed once.  The ranges:
 *
 *   kvm_rtdp   kvm_rtdp's text: what the module allocates, directly or
 *              through kvm.ko or the core kernel
 *   caches     kvm.ko's __kvm_mmu_topup_memory_cache(): the vCPU memory
 *              caches kvm.ko fills before it calls kvm_rtdp, from which
 *              kvm_rtdp takes its page tables
 *   modules    all module text, for insmod (kvm_rtdp's address is only
 *              known once it is loaded)
 *
 * After each injection the call must have succeeded, or failed with the
 * errno Documentation/rust-mmu.md documents for it; a VM that survived must
 * run and read back correct data; once the VM is gone, kvm_rtdp's page-table
 * count (kvm_rtdp/tables), SecPageTables and the module's refcount are back
 * at their start.  The operations:
 *
 *   create     KVM_CREATE_VM                          ENOMEM
 *   run        the first KVM_RUN of a new vCPU        ENOMEM
 *   prefault   KVM_PRE_FAULT_MEMORY                   ENOMEM (0 if partial)
 *   log        dirty logging enabled on a hugetlb     never fails: the
 *              slot mapped with 2 MiB pages (eager    split is best effort,
 *              split under mmu_lock for read)         as in C
 *   clear      KVM_CLEAR_DIRTY_LOG with manual        never fails (same)
 *              protect and initially-set (eager
 *              split under mmu_lock for write)
 *   delete     deleting a mapped memslot              never fails
 *   insmod     finit_module(kvm_rtdp.ko)              ENOMEM
 *
 * The small VMs run a 16-bit guest: it writes a word into a data slot and
 * copies one the host wrote there; the hugetlb VMs (kvm_util) write every
 * page, then every second one, which the dirty log must show exactly.
 * Runs on kvm_rtdp only (the Rust column) and on a kernel with fault
 * injection (the debug kernel): it skips elsewhere.  Needs 2 MiB hugetlb
 * pages (selftests/rtdp_hugetlb.sh reserves them).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bitmap.h>

#include "kvm_util.h"
#include "test_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rtdp_tiny_vm.h"
#include "rtdp_util.h"

#define DBG		"/sys/kernel/debug"
#define TABLES		DBG "/kvm_rtdp/tables"

struct range {
	const char *name;
	unsigned long start, end;
};

static int fail_nth_fd;

/* Both fault attributes fail only allocations from [start, end). */
static void set_filter(unsigned long start, unsigned long end)
{
	static const char * const attrs[] = { DBG "/failslab", DBG "/fail_page_alloc" };
	char path[128], val[32];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(attrs); i++) {
		snprintf(path, sizeof(path), "%s/require-start", attrs[i]);
		snprintf(val, sizeof(val), "%lu", start);
		rtdp_write_file(path, val);
		snprintf(path, sizeof(path), "%s/require-end", attrs[i]);
		snprintf(val, sizeof(val), "%lu", end);
		rtdp_write_file(path, val);
	}
}

/*
 * GFP_KERNEL and order-0 allocations may fail too (the defaults spare
 * them), and an injection prints nothing: the test counts them itself.
 */
static void setup_fault_attrs(void)
{
	rtdp_write_file(DBG "/failslab/ignore-gfp-wait", "N");
	rtdp_write_file(DBG "/failslab/verbose", "0");
	rtdp_write_file(DBG "/fail_page_alloc/ignore-gfp-wait", "N");
	rtdp_write_file(DBG "/fail_page_alloc/ignore-gfp-highmem", "N");
	rtdp_write_file(DBG "/fail_page_alloc/min-order", "0");
	rtdp_write_file(DBG "/fail_page_alloc/verbose", "0");
}

static void restore_fault_attrs(void)
{
	set_filter(0, ULONG_MAX);
	rtdp_write_file(DBG "/failslab/ignore-gfp-wait", "Y");
	rtdp_write_file(DBG "/fail_page_alloc/ignore-gfp-wait", "Y");
	rtdp_write_file(DBG "/fail_page_alloc/min-order", "1");
}

static void arm(int n)
{
	char val[16];
	int len = snprintf(val, sizeof(val), "%d", n);

	TEST_ASSERT(pwrite(fail_nth_fd, val, len, 0) == len, "arming fail-nth");
}

/* Disarm; true if the armed allocation was reached (and failed). */
static bool disarm(void)
{
	char val[16] = "";

	TEST_ASSERT(pread(fail_nth_fd, val, sizeof(val) - 1, 0) > 0, "reading fail-nth");
	TEST_ASSERT(pwrite(fail_nth_fd, "0", 1, 0) == 1, "disarming fail-nth");
	return atoi(val) == 0;
}

/*
 * The text of @module ("kvm_rtdp"), of one function of it (@func), or, with
 * neither, of every module: from /proc/kallsyms, the range ends at the
 * first symbol above that is not part of it.
 */
static struct range find_text(const char *name, const char *module, const char *func)
{
	unsigned long lo = ULONG_MAX, hi = 0, vmlinux_hi = 0, addr, next = ULONG_MAX;
	char line[512], sym[256], mod[64], type;
	struct range r = { .name = name };
	FILE *f;

	for (int pass = 0; pass < 2; pass++) {
		f = fopen("/proc/kallsyms", "r");
		TEST_ASSERT(f, "open /proc/kallsyms");
		while (fgets(line, sizeof(line), f)) {
			mod[0] = 0;
			if (sscanf(line, "%lx %c %255s [%63[^]]]", &addr, &type, sym, mod) < 3)
				continue;
			bool text = type == 't' || type == 'T';
			bool ours = text && (module ? !strcmp(mod, module) : mod[0]) &&
				    (!func || !strcmp(sym, func));

			if (pass == 0) {
				if (ours) {
					lo = addr < lo ? addr : lo;
					hi = addr > hi ? addr : hi;
				}
				if (text && !mod[0] && addr > vmlinux_hi)
					vmlinux_hi = addr;
			} else if (!ours && addr > hi && addr < next) {
				next = addr;
			}
		}
		fclose(f);
	}
	TEST_ASSERT(lo != ULONG_MAX, "no text symbol of %s %s in /proc/kallsyms",
		    module ?: "modules", func ?: "");
	TEST_ASSERT(lo > 0, "/proc/kallsyms hides addresses");
	if (!module) {
		/* Everything above vmlinux's text is module text. */
		r.start = vmlinux_hi + 1;
		r.end = ULONG_MAX;
	} else {
		r.start = lo;
		r.end = next;
	}
	return r;
}

/* What must be back at its start once no VM lives. */
struct baseline {
	long tables, sec_kb, refcnt;
};

static struct baseline baseline(void)
{
	struct baseline b = {
		.tables = rtdp_read_long(TABLES, "tables %ld"),
		.sec_kb = rtdp_sec_page_tables_kb(),
		.refcnt = rtdp_read_long("/sys/module/kvm_rtdp/refcnt", "%ld"),
	};
	return b;
}

static void check_baseline(const struct baseline *want, const char *op, int n)
{
	struct baseline now = baseline();

	TEST_ASSERT(now.tables == want->tables,
		    "%s, allocation %d failed: kvm_rtdp/tables %ld, %ld at the start",
		    op, n, now.tables, want->tables);
	TEST_ASSERT(now.sec_kb == want->sec_kb,
		    "%s, allocation %d failed: SecPageTables %ld kB, %ld kB at the start",
		    op, n, now.sec_kb, want->sec_kb);
	TEST_ASSERT(now.refcnt == want->refcnt,
		    "%s, allocation %d failed: kvm_rtdp refcnt %ld, %ld at the start",
		    op, n, now.refcnt, want->refcnt);
}

/* "@op, allocation @n failed", for messages. */
static const char *what(const char *op, int n)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s, allocation %d failed", op, n);
	return buf;
}

/* ---- the hugetlb VM (kvm_util) for dirty logging */

#define LOG_SLOT	10
#define LOG_GPA		BIT_ULL(32)
#define LOG_SIZE	(8ULL << 20)
#define LOG_PAGES	(LOG_SIZE / PAGE_SIZE)

/* Pass 1 writes every page, later passes every second page. */
static void log_guest(u64 gva)
{
	for (u64 pass = 1;; pass++) {
		for (u64 i = 0; i < LOG_PAGES; i++)
			if (pass == 1 || !(i & 1))
				WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), i ^ (pass << 32));
		GUEST_SYNC(pass);
	}
}

struct logvm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	bool manual;
};

static void log_new(struct logvm *l, bool manual)
{
	l->manual = manual;
	l->vm = vm_create_with_one_vcpu(&l->vcpu, log_guest);
	if (manual)
		vm_enable_cap(l->vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			      KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET);
	vm_userspace_mem_region_add(l->vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, LOG_GPA, LOG_SLOT,
				    LOG_PAGES, 0);
	virt_map(l->vm, LOG_GPA, LOG_GPA, LOG_PAGES);
	vcpu_args_set(l->vcpu, 1, LOG_GPA);
	rtdp_expect_ucall(l->vcpu, UCALL_SYNC);
	TEST_ASSERT(vm_get_stat(l->vm, pages_2m) >= LOG_SIZE >> 21,
		    "the hugetlb slot is not mapped with 2 MiB pages (pages_2m %lu)",
		    vm_get_stat(l->vm, pages_2m));
	if (manual)
		vm_mem_region_set_flags(l->vm, LOG_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
}

static int log_enable(struct logvm *l)
{
	return __vm_set_user_memory_region(l->vm, LOG_SLOT, KVM_MEM_LOG_DIRTY_PAGES, LOG_GPA,
					   LOG_SIZE, addr_gpa2hva(l->vm, LOG_GPA)) ? -errno : 0;
}

static int log_clear(struct logvm *l)
{
	static unsigned long ones[LOG_PAGES / BITS_PER_LONG];
	struct kvm_clear_dirty_log c = {
		.slot = LOG_SLOT, .first_page = 0, .num_pages = LOG_PAGES,
		.dirty_bitmap = ones,
	};

	memset(ones, 0xff, sizeof(ones));
	return ioctl(l->vm->fd, KVM_CLEAR_DIRTY_LOG, &c) ? -errno : 0;
}

/*
 * After logging started (and, with manual protect, was cleared): the guest
 * writes every second page; the log must show exactly those, and the host
 * must read what the guest wrote.
 */
static void log_finish(struct logvm *l, const char *op, int n)
{
	static unsigned long bitmap[LOG_PAGES / BITS_PER_LONG];
	u64 i;

	if (!l->manual) {
		/* Drop what enabling found dirty: nothing but the next pass. */
		kvm_vm_get_dirty_log(l->vm, LOG_SLOT, bitmap);
	} else if (log_clear(l)) {
		TEST_FAIL("%s, allocation %d failed: then KVM_CLEAR_DIRTY_LOG failed", op, n);
	}
	rtdp_expect_ucall(l->vcpu, UCALL_SYNC);
	kvm_vm_get_dirty_log(l->vm, LOG_SLOT, bitmap);
	for (i = 0; i < LOG_PAGES; i++) {
		u64 want = i ^ ((i & 1 ? 1ULL : 2ULL) << 32);
		u64 got = *(u64 *)addr_gpa2hva(l->vm, LOG_GPA + i * PAGE_SIZE);

		TEST_ASSERT(!!test_bit(i, bitmap) == !(i & 1),
			    "%s, allocation %d failed: page %lu %s in the dirty log", op, n, i,
			    test_bit(i, bitmap) ? "set" : "not set");
		TEST_ASSERT(got == want, "%s, allocation %d failed: page %lu holds %#lx, want %#lx",
			    op, n, i, got, want);
	}
}

/* ---- the operations */

struct ctx {
	struct tiny t;
	struct logvm l;
};

struct op {
	const char *name;
	int ok_errno;			/* 0: the call must succeed */
	bool module;			/* insmod: no VM, no baseline to keep */
	void (*setup)(struct ctx *c);
	int (*call)(struct ctx *c);	/* the injected call: 0 or -errno */
	void (*finish)(struct ctx *c, int r, int n);
	void (*teardown)(struct ctx *c);
};

static void no_setup(struct ctx *c) { }

/* Only KVM_CREATE_VM is injected; a VM it made gets its slots and vCPU after. */
static int create_call(struct ctx *c)
{
	c->t.vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	return c->t.vm < 0 ? -errno : 0;
}

static void create_finish(struct ctx *c, int r, int n)
{
	if (r)
		tiny_new(&c->t);	/* the next VM must be fine */
	else
		tiny_setup(&c->t, c->t.vm);
	tiny_finish(&c->t, -EAGAIN, what("create", n));
}

static void tiny_setup_op(struct ctx *c)
{
	tiny_new(&c->t);
}

static void tiny_teardown(struct ctx *c)
{
	tiny_free(&c->t);
}

static int run_call(struct ctx *c)
{
	return tiny_run_once(&c->t);
}

static void run_finish(struct ctx *c, int r, int n)
{
	tiny_finish(&c->t, r, what("run", n));
}

static int prefault_call(struct ctx *c)
{
	struct kvm_pre_fault_memory range = { .gpa = TINY_DATA_GPA, .size = TINY_SIZE };

	return ioctl(c->t.vcpu, KVM_PRE_FAULT_MEMORY, &range) ? -errno : 0;
}

static void prefault_finish(struct ctx *c, int r, int n)
{
	/* Again, without injection; then the guest runs on what is mapped. */
	TEST_ASSERT(!prefault_call(c), "prefault, allocation %d failed: then failed again", n);
	tiny_finish(&c->t, -EAGAIN, what("prefault", n));
}

static void delete_setup(struct ctx *c)
{
	tiny_new(&c->t);
	tiny_finish(&c->t, -EAGAIN, what("delete (setup)", 0));
}

static int delete_call(struct ctx *c)
{
	return set_slot(&c->t, 1, TINY_DATA_GPA, NULL, 0);
}

/* A new data slot at the same place; the guest runs again on it. */
static void delete_finish(struct ctx *c, int r, int n)
{
	tiny_data(&c->t);
	tiny_regs(&c->t);
	tiny_finish(&c->t, -EAGAIN, what("delete", n));
}

static void log_setup(struct ctx *c)
{
	log_new(&c->l, false);
}

static void clear_setup(struct ctx *c)
{
	log_new(&c->l, true);
}

static int log_call(struct ctx *c)
{
	return c->l.manual ? log_clear(&c->l) : log_enable(&c->l);
}

static void log_op_finish(struct ctx *c, int r, int n)
{
	log_finish(&c->l, c->l.manual ? "clear" : "log", n);
}

static void log_teardown(struct ctx *c)
{
	kvm_vm_free(c->l.vm);
}

static int insmod_call(struct ctx *c)
{
	return rtdp_load_module();
}

static void no_teardown(struct ctx *c) { }

/* A module that loaded serves VMs and unloads; one that did not left nothing. */
static void insmod_finish(struct ctx *c, int r, int n)
{
	if (r) {
		TEST_ASSERT(access("/sys/module/kvm_rtdp", F_OK) && !rtdp_is_provider(),
			    "insmod, allocation %d failed: kvm_rtdp stayed registered", n);
		return;
	}
	TEST_ASSERT(rtdp_is_provider(), "insmod, allocation %d failed: loaded but not registered",
		    n);
	tiny_new(&c->t);
	tiny_finish(&c->t, -EAGAIN, what("insmod", n));
	tiny_free(&c->t);
	rtdp_unload_module();
}

static const struct op ops[] = {
	{ "create", ENOMEM, false, no_setup, create_call, create_finish, tiny_teardown },
	{ "run", ENOMEM, false, tiny_setup_op, run_call, run_finish, tiny_teardown },
	{ "prefault", ENOMEM, false, tiny_setup_op, prefault_call, prefault_finish, tiny_teardown },
	{ "log", 0, false, log_setup, log_call, log_op_finish, log_teardown },
	{ "clear", 0, false, clear_setup, log_call, log_op_finish, log_teardown },
	{ "delete", 0, false, delete_setup, delete_call, delete_finish, tiny_teardown },
};

/* kvm_rtdp unloaded first, so its counters are gone: no baseline. */
static const struct op insmod_op = {
	"insmod", ENOMEM, true, no_setup, insmod_call, insmod_finish, no_teardown,
};

/*
 * Fail the 1st, 2nd, ... allocation of @op in @range until the call makes
 * no more; returns how many were failed (and survived).
 */
static int inject(const struct op *op, const struct range *range, int *errors)
{
	struct baseline start = {};
	struct ctx c;
	bool reached;
	int n, r;

	if (!op->module)
		start = baseline();
	*errors = 0;
	for (n = 1;; n++) {
		memset(&c, 0, sizeof(c));
		op->setup(&c);
		set_filter(range->start, range->end);
		arm(n);
		r = op->call(&c);
		reached = disarm();
		TEST_ASSERT(!r || (op->ok_errno && r == -op->ok_errno),
			    "%s, allocation %d in %s failed: the call returned %d (%s), want 0%s%s",
			    op->name, n, range->name, r, strerror(-r),
			    op->ok_errno ? " or " : "", op->ok_errno ? strerror(op->ok_errno) : "");
		TEST_ASSERT(reached || !r, "%s: call %d failed without an injection (%d)",
			    op->name, n, r);
		*errors += !!r;
		op->finish(&c, r, n);
		op->teardown(&c);
		if (!op->module)
			check_baseline(&start, op->name, n);
		if (!reached)
			return n - 1;
	}
}

int main(void)
{
	struct range rtdp, caches, modules;
	char path[64];
	unsigned int i;
	int total = 0;

	__TEST_REQUIRE(!access(DBG "/failslab", F_OK) && !access(DBG "/fail_page_alloc", F_OK),
		       "no failslab/fail_page_alloc in debugfs (a kernel without fault injection)");
	__TEST_REQUIRE(!access(TABLES, F_OK), "kvm_rtdp is not loaded (the C column)");
	TEST_ASSERT(rtdp_is_provider(), "kvm_rtdp is loaded but is not the provider");

	tiny_open();
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth", syscall(SYS_gettid));
	fail_nth_fd = open(path, O_RDWR);
	TEST_ASSERT(fail_nth_fd >= 0, "open %s", path);
	setup_fault_attrs();

	rtdp = find_text("kvm_rtdp", "kvm_rtdp", NULL);
	caches = find_text("caches", "kvm", "__kvm_mmu_topup_memory_cache");
	printf("kvm_rtdp text %#lx-%#lx, kvm.ko's cache top-up %#lx-%#lx\n",
	       rtdp.start, rtdp.end, caches.start, caches.end);

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		const char *err = ops[i].ok_errno ? "ENOMEM" : "failed";
		int in_rtdp, in_caches, e_rtdp, e_caches;

		in_rtdp = inject(&ops[i], &rtdp, &e_rtdp);
		in_caches = inject(&ops[i], &caches, &e_caches);
		printf("rtdp-report: fail-nth %-8s kvm_rtdp %3d (%d %s), caches %3d (%d %s)\n",
		       ops[i].name, in_rtdp, e_rtdp, err, in_caches, e_caches, err);
		total += in_rtdp + in_caches;
	}

	/* insmod: kvm_rtdp out first; it is back, uninjected, at the end. */
	rtdp_unload_module();
	modules = find_text("modules", NULL, NULL);
	{
		int n, e;

		n = inject(&insmod_op, &modules, &e);
		printf("rtdp-report: fail-nth %-8s modules  %3d (%d ENOMEM)\n", "insmod", n, e);
		total += n;
	}
	restore_fault_attrs();
	TEST_ASSERT(!rtdp_load_module(), "insmod kvm_rtdp at the end");
	TEST_ASSERT(rtdp_is_provider(), "kvm_rtdp back as the provider");
	printf("rtdp-report: fail-nth: %d allocations failed and survived (in brackets: calls\n",
	       total);
	printf("rtdp-report: that failed with the documented errno; the others succeeded)\n");
	return 0;
}
