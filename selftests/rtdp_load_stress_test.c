// SPDX-License-Identifier: GPL-2.0
/*
 * rtdp_load_stress_test: insmod and rmmod kvm_rtdp over and over while
 * threads create, run and destroy VMs.
 *
 * The main thread loads kvm_rtdp, lets the VM threads run for a moment,
 * tries to unload it once (refused exactly when a VM may be alive), then
 * holds new VMs back until none is left and unloads it: that must succeed.
 * It counts every load and unload attempt as a transition, seqlock-style
 * (odd while the syscall runs), so that a VM thread knows which provider
 * was registered for the whole of its KVM_CREATE_VM, or that it cannot
 * know.  Each VM thread, for each VM it makes:
 *
 *   - if no transition overlapped the creation, the VM must be bound to
 *     kvm_rtdp exactly when kvm_rtdp was loaded (it has a kvm_rtdp debugfs
 *     directory named after the creating thread);
 *   - it must run its guest to the hlt and hold the guest's data, bound to
 *     either MMU, whatever happens to the module meanwhile.
 *
 * At the end kvm_rtdp is loaded again, and kvm.ko's and kvm_rtdp's
 * refcounts, SecPageTables and kvm_rtdp/tables are back at their start;
 * kmemleak and the console verdict of make check cover the rest.  KUnit's
 * suites in kvm_rtdp are filtered out while the test loads it, and the
 * console shows warnings only, so that 1000 loads do not print 1000 KTAP
 * reports.
 *
 *   -n CYCLES   load/unload cycles (default 1000)
 *   -t THREADS  VM threads (default 2)
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"

#include "rtdp_tiny_vm.h"
#include "rtdp_util.h"

#define KUNIT_GLOB	"/sys/module/kunit/parameters/filter_glob"
#define PRINTK		"/proc/sys/kernel/printk"
#define MAX_THREADS	8

/* Transitions (load or unload attempts) so far, times two; odd during one. */
static atomic_long seq;
static atomic_bool loaded;
/*
 * VMs that exist or are being created (an over-count of bound VMs), and how
 * many were ever started.
 */
static atomic_long live, started;
static atomic_bool draining, stop;

struct counts {
	long vms, rust, c, raced, checked_rust, checked_c;
};

static struct counts counts[MAX_THREADS];

static bool bound_to_rtdp(pid_t tid)
{
	char prefix[32];
	struct dirent *e;
	bool found = false;
	DIR *d = opendir("/sys/kernel/debug/kvm_rtdp");

	if (!d)
		return false;
	snprintf(prefix, sizeof(prefix), "%d-", tid);
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			found = true;
	closedir(d);
	return found;
}

static void *vm_thread(void *arg)
{
	struct counts *n = arg;
	pid_t tid = syscall(SYS_gettid);
	char what[64];

	while (!atomic_load(&stop)) {
		struct tiny t;
		long s1, s2;
		bool was_loaded, rust;
		int vm;

		/* Counted before draining is read: see the main thread. */
		atomic_fetch_add(&live, 1);
		atomic_fetch_add(&started, 1);
		if (atomic_load(&draining)) {
			atomic_fetch_sub(&live, 1);
			usleep(100);
			continue;
		}
		s1 = atomic_load(&seq);
		was_loaded = atomic_load(&loaded);
		vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
		s2 = atomic_load(&seq);
		TEST_ASSERT(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
		tiny_setup(&t, vm);
		rust = bound_to_rtdp(tid);
		if (s1 == s2 && !(s1 & 1)) {
			TEST_ASSERT(rust == was_loaded,
				    "VM %ld of thread %d: made while kvm_rtdp was %s, but bound to %s",
				    n->vms, tid, was_loaded ? "loaded" : "unloaded",
				    rust ? "kvm_rtdp" : "the C TDP MMU");
			if (rust)
				n->checked_rust++;
			else
				n->checked_c++;
		} else {
			n->raced++;
		}
		if (rust)
			n->rust++;
		else
			n->c++;
		snprintf(what, sizeof(what), "VM %ld of thread %d (%s)", n->vms, tid,
			 rust ? "kvm_rtdp" : "C");
		tiny_finish(&t, -EAGAIN, what);
		tiny_free(&t);
		atomic_fetch_sub(&live, 1);
		n->vms++;
	}
	return NULL;
}

/* One load or unload attempt, as a transition; returns its result. */
static int transition(bool load)
{
	int r;

	atomic_fetch_add(&seq, 1);
	r = load ? rtdp_load_module() : __rtdp_unload_module();
	if (!r)
		atomic_store(&loaded, load);
	atomic_fetch_add(&seq, 1);
	return r;
}

int main(int argc, char *argv[])
{
	long cycles = 1000, refused = 0, unloaded_at_once = 0, i, live0, started0, hold;
	long kvm_ref, rtdp_ref, tables, sec_kb;
	int threads = 2, opt, r, j;
	char printk[64], glob[128] = "";
	bool kunit = !access(KUNIT_GLOB, F_OK);
	pthread_t tids[MAX_THREADS];
	struct counts total = {};

	while ((opt = getopt(argc, argv, "n:t:")) != -1) {
		switch (opt) {
		case 'n':
			cycles = atol(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			TEST_ASSERT(threads > 0 && threads <= MAX_THREADS, "1 to %d threads",
				    MAX_THREADS);
			break;
		default:
			exit(KSFT_FAIL);
		}
	}
	__TEST_REQUIRE(!access("/sys/kernel/debug/kvm_rtdp/tables", F_OK),
		       "kvm_rtdp is not loaded (the C column)");
	TEST_ASSERT(rtdp_is_provider(), "kvm_rtdp is loaded but is not the provider");
	tiny_open();

	kvm_ref = rtdp_read_long("/sys/module/kvm/refcnt", "%ld");
	rtdp_ref = rtdp_read_long("/sys/module/kvm_rtdp/refcnt", "%ld");
	tables = rtdp_read_long("/sys/kernel/debug/kvm_rtdp/tables", "tables %ld");
	sec_kb = rtdp_sec_page_tables_kb();
	TEST_ASSERT(rtdp_ref == 0, "kvm_rtdp has %ld users before the test", rtdp_ref);

	rtdp_read_line(PRINTK, printk, sizeof(printk));
	rtdp_write_file(PRINTK, "5");
	if (kunit) {
		rtdp_read_line(KUNIT_GLOB, glob, sizeof(glob));
		rtdp_write_file(KUNIT_GLOB, "rtdp_load_stress_none");
	}

	rtdp_unload_module();
	atomic_store(&loaded, false);
	for (j = 0; j < threads; j++)
		pthread_create(&tids[j], NULL, vm_thread, &counts[j]);

	for (i = 0; i < cycles; i++) {
		/*
		 * Loaded, then unloaded, each for a moment without transition;
		 * every 8th cycle for longer than a VM takes to be created
		 * (tens of ms on the debug kernel under TCG), so that the
		 * binding is checked on both sides.
		 */
		hold = i % 8 ? 2000 + random() % 8000 : 300000;
		r = transition(true);
		TEST_ASSERT(!r, "cycle %ld: insmod kvm_rtdp: %s", i, strerror(-r));
		usleep(hold);

		/*
		 * Refused only if a VM may have been alive during the call: one
		 * was before it, or one was started meanwhile.
		 */
		live0 = atomic_load(&live);
		started0 = atomic_load(&started);
		r = transition(false);
		if (r) {
			TEST_ASSERT(r == -EWOULDBLOCK || r == -EBUSY,
				    "cycle %ld: rmmod kvm_rtdp: %s", i, strerror(-r));
			TEST_ASSERT(live0 > 0 || atomic_load(&started) != started0,
				    "cycle %ld: rmmod refused with no VM alive", i);
			refused++;
		} else {
			unloaded_at_once++;
			usleep(hold);
			continue;
		}

		/* No new VM; once the last is gone, rmmod must succeed. */
		atomic_store(&draining, true);
		while (atomic_load(&live))
			usleep(50);
		r = transition(false);
		TEST_ASSERT(!r, "cycle %ld: rmmod kvm_rtdp with no VM left: %s", i,
			    strerror(-r));
		atomic_store(&draining, false);
		usleep(hold);
	}
	atomic_store(&stop, true);
	for (j = 0; j < threads; j++) {
		pthread_join(tids[j], NULL);
		total.vms += counts[j].vms;
		total.rust += counts[j].rust;
		total.c += counts[j].c;
		total.raced += counts[j].raced;
		total.checked_rust += counts[j].checked_rust;
		total.checked_c += counts[j].checked_c;
	}

	TEST_ASSERT(!rtdp_load_module(), "insmod kvm_rtdp at the end");
	if (kunit)
		rtdp_write_file(KUNIT_GLOB, glob[0] ? glob : "*.*");
	rtdp_write_file(PRINTK, printk);
	TEST_ASSERT(rtdp_is_provider(), "kvm_rtdp is not the provider at the end");

	TEST_ASSERT(rtdp_read_long("/sys/module/kvm/refcnt", "%ld") == kvm_ref,
		    "kvm.ko refcount %ld, %ld at the start",
		    rtdp_read_long("/sys/module/kvm/refcnt", "%ld"), kvm_ref);
	TEST_ASSERT(rtdp_read_long("/sys/module/kvm_rtdp/refcnt", "%ld") == 0,
		    "kvm_rtdp has users with no VM left");
	TEST_ASSERT(rtdp_read_long("/sys/kernel/debug/kvm_rtdp/tables", "tables %ld") == tables,
		    "kvm_rtdp/tables not back at %ld", tables);
	TEST_ASSERT(rtdp_sec_page_tables_kb() == sec_kb, "SecPageTables %ld kB, %ld kB before",
		    rtdp_sec_page_tables_kb(), sec_kb);
	TEST_ASSERT(total.rust > 0 && total.c > 0, "VMs on kvm_rtdp %ld, on C %ld: want both",
		    total.rust, total.c);
	TEST_ASSERT(total.checked_rust > 0 && total.checked_c > 0,
		    "bindings checked: %ld on kvm_rtdp, %ld on C; want both", total.checked_rust,
		    total.checked_c);

	printf("rtdp-report: load stress: %ld insmod/rmmod cycles, %ld VMs\n", cycles, total.vms);
	printf("rtdp-report: load stress: %ld on kvm_rtdp, %ld on C, %ld made in a transition\n",
	       total.rust, total.c, total.raced);
	printf("rtdp-report: load stress: binding checked for %ld on kvm_rtdp, %ld on C\n",
	       total.checked_rust, total.checked_c);
	printf("rtdp-report: load stress: rmmod refused %ld times, then succeeded; %ld at once\n",
	       refused, unloaded_at_once);
	return 0;
}
