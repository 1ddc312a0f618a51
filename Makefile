# SPDX-License-Identifier: GPL-2.0
#
# rtdp: the x86 KVM TDP MMU in Rust. See README.md.
#
#   make run      build what is missing, boot the patched kernel in QEMU, run a
#                 KVM guest workload on it and print what happened
#   make check [T="name ..."]  host tests, builds, and the VM test run;
#                 prints a KTAP report ending in `N passed, N failed, N skipped`;
#                 T runs only those entries of selftests/vm-tests.list, on
#                 the perf kernel unless RTDP_CHECK_KERNELS says otherwise,
#                 and replays host steps whose inputs did not change
#   make bench    C TDP MMU against kvm_rtdp in one boot under QEMU -icount:
#                 median, spread and Rust/C ratio per phase, and a CSV
#   make profile [P=name]  guest instructions per function, C and Rust side
#                 by side, for one entry of selftests/profile.list
#   make shell    the test guest with kvm, kvm-amd, kvm_rtdp and the
#                 selftests, and a shell on the console; exit ends QEMU
#
# Parts: deps, kernel, module, selftests, host-test, script-test, clean-cache.
# Build products live in $(RTDP_CACHE) (default ~/.cache/rtdp), never here.
# kbuild (make -C $KDIR M=$PWD) reads Kbuild, not this file.

SHELL := /bin/bash
S := scripts

.PHONY: run check bench profile shell deps kernel module selftests host-test script-test clean-cache

run:
	@bash $(S)/run.sh

check:
	@$(if $(T),RTDP_TESTS="$(T)") bash $(S)/check.sh

bench:
	@bash $(S)/bench.sh

profile:
	@bash $(S)/profile.sh $(P)

shell:
	@bash $(S)/shell.sh

deps:
	@bash $(S)/deps.sh

kernel:
	@bash $(S)/kernel.sh build

module: kernel
	@bash $(S)/module.sh

selftests: kernel
	@bash $(S)/kernel.sh selftests

host-test:
	@cd rust/core && cargo test

script-test:
	@bash $(S)/test-scripts.sh

clean-cache:
	@source $(S)/common.sh && echo "removing $$RTDP_CACHE" && rm -rf "$$RTDP_CACHE"
