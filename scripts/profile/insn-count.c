// SPDX-License-Identifier: GPL-2.0
/*
 * insn-count: a QEMU TCG plugin that counts the guest instructions executed
 * per translation block and writes a snapshot of all counts each time the
 * guest executes the marker instruction (see mark.c).
 *
 * Debian's QEMU 7.2 exports the plugin API (version 1) but ships no
 * qemu-plugin.h, so the few declarations used are spelled out here, as
 * that header has them.
 *
 *   -plugin <this .so>,out=FILE
 *
 * FILE gets, per snapshot, a line "snapshot N" and then one line
 * "VADDR INSNS EXECS" (hex vaddr, decimal counts) per translation block
 * executed at least once since the start. A block translated twice (after
 * a TB flush) has two records; the reader adds them up.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
					    qemu_plugin_vcpu_udata_cb_t cb,
					    enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* nopl 0x52544450(%rax,%rax,1): "PDTR", a NOP no compiler emits. */
static const unsigned char marker[8] = { 0x0f, 0x1f, 0x84, 0x00, 0x50, 0x44, 0x54, 0x52 };

struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t execs;
};

/* Blocks live in chunks that never move: the inline adds point into them. */
#define CHUNK 65536
static struct block **chunks;
static size_t nchunks, used;
static FILE *out;
static unsigned int snapshots;

static struct block *new_block(void)
{
	if (used == nchunks * CHUNK) {
		chunks = realloc(chunks, (nchunks + 1) * sizeof(*chunks));
		if (!chunks || !(chunks[nchunks] = calloc(CHUNK, sizeof(struct block)))) {
			fprintf(stderr, "insn-count: out of memory\n");
			exit(1);
		}
		nchunks++;
	}
	used++;
	return &chunks[(used - 1) / CHUNK][(used - 1) % CHUNK];
}

static void snapshot(void)
{
	fprintf(out, "snapshot %u\n", snapshots++);
	for (size_t i = 0; i < used; i++) {
		struct block *b = &chunks[i / CHUNK][i % CHUNK];

		if (b->execs)
			fprintf(out, "%016llx %llu %llu\n", (unsigned long long)b->vaddr,
				(unsigned long long)b->insns, (unsigned long long)b->execs);
	}
	fflush(out);
}

static void on_marker(unsigned int vcpu_index, void *userdata)
{
	snapshot();
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);
	struct block *b = new_block();

	b->vaddr = qemu_plugin_tb_vaddr(tb);
	b->insns = n;
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);

		if (qemu_plugin_insn_size(insn) == sizeof(marker) &&
		    !memcmp(qemu_plugin_insn_data(insn), marker, sizeof(marker)))
			qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker,
							       QEMU_PLUGIN_CB_NO_REGS, NULL);
	}
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
	fclose(out);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	const char *path = NULL;

	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	if (!path) {
		fprintf(stderr, "insn-count: usage: -plugin insn-count.so,out=FILE\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
	return 0;
}
