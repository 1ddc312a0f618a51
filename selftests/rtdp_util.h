/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the rtdp selftests (on top of kvm_util).
 */
#ifndef SELFTEST_RTDP_UTIL_H
#define SELFTEST_RTDP_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm_util.h"
#include "test_util.h"
#include "ucall_common.h"

/*
 * The exit @vcpu just made must be ucall @want (its arguments in @uc);
 * reports guest asserts.
 */
static inline void rtdp_check_ucall(struct kvm_vcpu *vcpu, u64 want, struct ucall *uc)
{
	u64 cmd = get_ucall(vcpu, uc);

	if (cmd == UCALL_ABORT)
		REPORT_GUEST_ASSERT(*uc);
	TEST_ASSERT(cmd == want, "ucall %lu, want %lu (exit reason %s)", cmd, want,
		    exit_reason_str(vcpu->run->exit_reason));
}

/*
 * Run @vcpu to its next ucall, which must be @want, answering MMIO reads of
 * [@gpa, @gpa + @size) with zeroes (any other exit fails); the number of
 * MMIO exits.
 */
static inline int rtdp_run_answering_mmio(struct kvm_vcpu *vcpu, u64 want, u64 gpa, u64 size)
{
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int mmio = 0;

	for (;;) {
		vcpu_run(vcpu);
		if (run->exit_reason != KVM_EXIT_MMIO)
			break;
		TEST_ASSERT(run->mmio.phys_addr >= gpa && run->mmio.phys_addr < gpa + size,
			    "MMIO exit at %#llx", run->mmio.phys_addr);
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		mmio++;
	}
	rtdp_check_ucall(vcpu, want, &uc);
	return mmio;
}

/*
 * The file a test that saves its results in the C column and compares them
 * in the Rust one uses: -f FILE, else @fallback.
 */
static inline const char *rtdp_saved_file(int argc, char *argv[], const char *fallback)
{
	const char *file = fallback;
	int opt;

	while ((opt = getopt(argc, argv, "f:")) != -1) {
		switch (opt) {
		case 'f':
			file = optarg;
			break;
		default:
			printf("usage: %s [-f FILE]\n", argv[0]);
			exit(KSFT_FAIL);
		}
	}
	return file;
}

/* Run @vcpu until its next ucall, which must be @want. */
static inline void rtdp_expect_ucall(struct kvm_vcpu *vcpu, u64 want)
{
	struct ucall uc;

	vcpu_run(vcpu);
	rtdp_check_ucall(vcpu, want, &uc);
}

/*
 * The debugfs directory kvm_rtdp gave this process's VM ("<pid>-<n>"), in
 * @path; false if there is none (the VM runs on the C TDP MMU).  With
 * several VMs in the process, the first one found.
 */
static inline bool rtdp_vm_debugfs(char *path, size_t size)
{
	const char *root = "/sys/kernel/debug/kvm_rtdp";
	char prefix[32];
	struct dirent *e;
	bool found = false;
	DIR *d;

	d = opendir(root);
	if (!d)
		return false;
	snprintf(prefix, sizeof(prefix), "%d-", getpid());
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			found = snprintf(path, size, "%s/%s", root, e->d_name) < (int)size;
			break;
		}
	}
	closedir(d);
	return found;
}

/*
 * Value of the "@name N" line of the debugfs file @dir/@file; asserts that
 * the line is there.
 */
static inline long rtdp_debugfs_value(const char *dir, const char *file, const char *name)
{
	char path[256], line[128], key[64];
	long value, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", key, &value) == 2 && !strcmp(key, name))
			found = value;
	fclose(f);
	TEST_ASSERT(found >= 0, "no '%s' in %s", name, path);
	return found;
}

/* SecPageTables of /proc/meminfo in kB, made exact first (vm.stat_refresh). */
static inline long rtdp_sec_page_tables_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/sys/vm/stat_refresh", "w");
	TEST_ASSERT(f, "open /proc/sys/vm/stat_refresh");
	fputs("1\n", f);
	fclose(f);

	f = fopen("/proc/meminfo", "r");
	TEST_ASSERT(f, "open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SecPageTables: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Write exactly @val to @path (no newline: string module parameters keep it). */
static inline void rtdp_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	TEST_ASSERT(fd >= 0, "open %s", path);
	TEST_ASSERT(write(fd, val, strlen(val)) == (ssize_t)strlen(val), "write %s to %s",
		    val, path);
	close(fd);
}

/* The first line of @path, without its newline. */
static inline void rtdp_read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f && fgets(buf, size, f), "read %s", path);
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

/* The number @fmt (one %ld conversion) reads from @path. */
static inline long rtdp_read_long(const char *path, const char *fmt)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f && fscanf(f, fmt, &v) == 1, "parsing %s", path);
	fclose(f);
	return v;
}

/* Where the test guest keeps kvm_rtdp's module. */
#define RTDP_KO	"/lib/modules/kvm_rtdp.ko"

/* insmod kvm_rtdp: 0 or -errno. */
static inline int rtdp_load_module(void)
{
	int fd = open(RTDP_KO, O_RDONLY), r;

	TEST_ASSERT(fd >= 0, "open %s", RTDP_KO);
	r = syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return r;
}

/* rmmod kvm_rtdp, without waiting for its users: 0 or -errno. */
static inline int __rtdp_unload_module(void)
{
	return syscall(SYS_delete_module, "kvm_rtdp", O_NONBLOCK) ? -errno : 0;
}

static inline void rtdp_unload_module(void)
{
	int r = __rtdp_unload_module();

	TEST_ASSERT(!r, "rmmod kvm_rtdp: %s", strerror(-r));
}

/* Whether kvm_rtdp is the TDP MMU provider new VMs bind to. */
static inline bool rtdp_is_provider(void)
{
	char name[64] = "";
	FILE *f = fopen("/sys/module/kvm/parameters/tdp_mmu_provider", "r");

	TEST_ASSERT(f && fgets(name, sizeof(name), f), "reading tdp_mmu_provider");
	fclose(f);
	return !strcmp(name, "kvm_rtdp\n");
}

/*
 * Whether this run is in the kvm_rtdp column: RTDP_COLUMN ("rust" or "c"),
 * which the test guest sets for every run and which must agree with whether
 * kvm_rtdp is the provider; without it (a test run by hand), whether
 * kvm_rtdp is the provider.
 */
static inline bool rtdp_rust_column(void)
{
	const char *col = getenv("RTDP_COLUMN");
	bool provider = rtdp_is_provider();

	if (!col)
		return provider;
	TEST_ASSERT(!strcmp(col, "rust") || !strcmp(col, "c"), "RTDP_COLUMN=%s", col);
	TEST_ASSERT(!strcmp(col, "rust") == provider,
		    "RTDP_COLUMN=%s, but kvm_rtdp %s the TDP MMU provider", col,
		    provider ? "is" : "is not");
	return provider;
}

/*
 * Whether this process's VM runs on kvm_rtdp, as its column says, with its
 * debugfs directory in @path: a VM in the Rust column without one, or in
 * the C column with one, fails the test rather than skipping the Rust
 * checks or running them on C.
 */
static inline bool rtdp_vm_column(char *path, size_t size)
{
	bool rust = rtdp_rust_column(), found = rtdp_vm_debugfs(path, size);

	TEST_ASSERT(found == rust, "%s column, but the VM %s kvm_rtdp debugfs directory",
		    rust ? "Rust" : "C", found ? "has a" : "has no");
	return rust;
}

#endif /* SELFTEST_RTDP_UTIL_H */
