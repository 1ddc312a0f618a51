#!/usr/bin/env bash
# check.sh: everything `make check` runs, one KTAP report, one closing line.
#
#   host     cargo test of rust/core, tests of these scripts, checkpatch
#   build    kernel (cached), kvm_rtdp.ko, selftests, initramfs; for the debug
#            kernel, then for the perf kernel
#   guest    debug kernel: KUnit suites of kvm_rtdp, the selftests of
#            selftests/vm-tests.list in both columns, module unload, kmemleak
#            after each column, lockdep still on; perf kernel: `make run`'s
#            workload. An oops, a checker's report, a panic or a hang fails
#            the run
#
# With T="name ..." (RTDP_TESTS) only those plan entries run, on the perf
# kernel unless RTDP_CHECK_KERNELS says otherwise, and host steps whose
# inputs are unchanged since they last passed replay those results
# (scripts/host-steps.sh).
#
# The report is printed on stdout and kept in $RTDP_CACHE/runs/check/.
# Exit status is non-zero when anything failed or could not run.
source "$(dirname "$0")/common.sh"
source "$RTDP_ROOT/scripts/report.sh"

out="$RTDP_CACHE/runs/check"
rm -rf "$out"
mkdir -p "$out"
export RTDP_RESULTS="$out/results"
: >"$RTDP_RESULTS"
t0=$SECONDS

# The kernel's own KTAP parser must read the report as we count it.
kunit_parse() {
	local py="${RTDP_WORK:-}/tools/testing/kunit/kunit.py" draft="$out/report.draft.ktap"
	local want got
	[ -n "${RTDP_WORK:-}" ] && [ -f "$py" ] || return 0
	report_ktap >"$draft"
	want=$(tail -1 "$draft" | awk '{ print $1, $3, $5 }')
	# kunit.py exits 1 when a test failed: its counts are what matters.
	got=$({ python3 "$py" parse "$draft" 2>&1 || true; } | awk '/Testing complete/ {
		p = f = s = 0
		for (i = 1; i <= NF; i++) {
			if ($i == "passed:") p = $(i + 1) + 0
			if ($i == "failed:") f = $(i + 1) + 0
			if ($i == "skipped:") s = $(i + 1) + 0
		}
		print p, f, s
	}')
	if [ "$got" = "$want" ]; then
		record ok "kunit.py parse" "passed, failed, skipped: $got"
	else
		record "not ok" "kunit.py parse" "kunit.py counts '${got:-nothing}', the report '$want'"
	fi
}

finish() {
	kunit_parse
	echo "# make check took $((SECONDS - t0)) s" >>"$RTDP_RESULTS"
	report_ktap | tee "$out/report.ktap"
	grep -q '^not ok ' "$RTDP_RESULTS" && exit 1
	exit 0
}
fatal() { # fatal NAME DETAIL: record a failure that stops the run
	record "not ok" "$1" "$2"
	finish
}

# The plan in the grammar the guest takes (scripts/plan.sh), before anything
# is built: a bad line would stop the guest after the kernels.
# shellcheck source=plan.sh
if ! bad=$(source "$RTDP_ROOT/scripts/plan.sh" && plan_check "$RTDP_ROOT/selftests/vm-tests.list"); then
	fatal "test plan well formed" "$(echo "$bad" | tr '\n' ';')"
fi

# `make check T="name ..."`: only those plan entries, in the check-mode guest.
want_tests=${RTDP_TESTS:-}
if [ -n "$want_tests" ]; then
	(rtdp_plan >/dev/null) || fatal "T=$want_tests" "not in selftests/vm-tests.list"
	echo "# plan narrowed to: $(echo "$want_tests" | xargs)" >>"$RTDP_RESULTS"
fi

# Host steps that `make check T=...` may replay (scripts/host-steps.sh).
host_cache="$RTDP_CACHE/host-steps"
source "$RTDP_ROOT/scripts/host-steps.sh"

bash "$RTDP_ROOT/scripts/deps.sh" || fatal deps "dependencies could not be installed"

# --- host
# record_cargo LOG NAME-PREFIX STATUS: one result per test case of a `cargo
# test -- --format=pretty` log, and one for the run as a whole, judged by
# cargo's exit STATUS and its `test result: ok.` lines: a harness that
# aborts after N tests (a panic outside a test, a killed process) has
# printed N passes but is a failure. No test at all is a failure too.
record_cargo() {
	local n log=$1 name=$2 status=$3 bad
	n=$(grep -cE '^test .* \.\.\. ' "$log" || true)
	if [ "$n" -eq 0 ]; then
		record "not ok" "$name" "no test ran (cargo exit $status); log: $log"
		return
	fi
	sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored\)$/\2 \1/p' "$log" |
		while read -r st t; do
			case $st in
			ok) record ok "$name $t" ;;
			ignored) record skip "$name $t" "ignored" ;;
			*) record "not ok" "$name $t" ;;
			esac
		done
	bad=$(cargo_verdict "$log" "$status")
	if [ -z "$bad" ]; then
		record ok "$name: cargo exit 0, every harness ok"
	else
		record "not ok" "$name: cargo" "$bad; log: $log"
	fi
}

cargo_tests() {
	local st=0
	log "host: cargo test (rust/core)"
	CARGO_TARGET_DIR="$RTDP_CACHE/cargo-target" cargo test --quiet \
		--manifest-path "$RTDP_ROOT/rust/core/Cargo.toml" -- --format=pretty >"$out/cargo.log" 2>&1 || st=$?
	record_cargo "$out/cargo.log" host "$st"
}
# Loom explores every interleaving of the lock-free models (release build:
# the debug one takes minutes); the crate is fetched from crates.io once.
loom_tests() {
	local st=0
	log "host: loom models (rust/core, --cfg loom)"
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$RTDP_CACHE/cargo-target-loom" cargo test --release \
		--quiet --manifest-path "$RTDP_ROOT/rust/core/Cargo.toml" loom_tests -- --format=pretty \
		>"$out/loom.log" 2>&1 || st=$?
	record_cargo "$out/loom.log" "host loom" "$st"
}
core_key=$(inputs_key "$RTDP_ROOT/rust/core")
host_step cargo "$core_key" cargo_tests
host_step loom "$core_key" loom_tests

log "host: rustfmt --check (the kernel's .rustfmt.toml, Debian's rustfmt)"
if fmt_out=$(find "$RTDP_ROOT/rust" -name '*.rs' -not -path '*/target/*' -print0 |
	xargs -0 /usr/bin/rustfmt --config-path "$RTDP_ROOT/rust/.rustfmt.toml" --check -l 2>&1); then
	record ok "host rustfmt"
else
	record "not ok" "host rustfmt" "not formatted: $(echo "$fmt_out" | sort -u | tr '\n' ' ')"
fi

log "host: unsafe code only in rust/kvm/ and rust/entries.rs (scripts/unsafe-check.sh)"
bash "$RTDP_ROOT/scripts/unsafe-check.sh" >>"$RTDP_RESULTS" 2>>"$out/unsafe-check.log" ||
	grep -q '^not ok unsafe confined' "$RTDP_RESULTS" || record "not ok" "unsafe confined" "see $out/unsafe-check.log"

log "host: script tests"
bash "$RTDP_ROOT/scripts/test-scripts.sh" >>"$RTDP_RESULTS" 2>"$out/test-scripts.log" ||
	grep -q '^not ok' "$RTDP_RESULTS" || record "not ok" "script tests" "see $out/test-scripts.log"

# --- build and guest, once per kernel (scripts/kernel.sh):
#   debug  lockdep, KASAN, kmemleak: the whole plan in both columns
#   perf   the kernel `make run` and `make bench` use: `make run`'s workload
# RTDP_CHECK_KERNELS narrows this (e.g. "perf": the plan on the perf kernel).
# With T= the quick loop runs on the perf kernel unless told otherwise.
if [ -n "$want_tests" ]; then
	kernels=${RTDP_CHECK_KERNELS:-perf}
	echo "# kernels: $kernels$([ "$kernels" = perf ] && echo "; RTDP_CHECK_KERNELS=debug for lockdep, KASAN and kmemleak")" >>"$RTDP_RESULTS"
else
	kernels=${RTDP_CHECK_KERNELS:-debug perf}
fi
first=1
for flavour in $kernels; do
	export RTDP_KERNEL_FLAVOUR=$flavour
	case "$kernels" in *" "*) sfx=" ($flavour)" ;; *) sfx= ;; esac
	case "$flavour" in
	debug) mode=check ;;
	perf) mode=$([ "$kernels" = perf ] && echo check || echo perf) ;;
	*) fatal "RTDP_CHECK_KERNELS" "unknown kernel $flavour: want debug, perf" ;;
	esac
	tk=$SECONDS
	bash "$RTDP_ROOT/scripts/kernel.sh" build || fatal "build kernel$sfx" "see the messages above"
	record ok "build kernel$sfx" "$((SECONDS - tk)) s"
	eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"

	if [ $first = 1 ]; then
		first=0
		checkpatch() { # checkpatch NAME ARGS...
			local name=$1 cp_out
			shift
			# FILE_PATH_CHANGES asks whether MAINTAINERS needs a new file;
			# ours are all under arch/x86/include/asm/kvm* or
			# arch/x86/kvm/, which the KVM/x86 entry already covers.
			if cp_out=$(perl "$RTDP_WORK/scripts/checkpatch.pl" --strict --no-tree -q \
				--ignore FILE_PATH_CHANGES "$@" 2>&1); then
				record ok "checkpatch $name"
			else
				record "not ok" "checkpatch $name" "$(echo "$cp_out" | grep -m1 -E '^(ERROR|WARNING|CHECK)')"
			fi
		}
		checkpatch_all() {
			log "host: checkpatch --strict on patches/ and selftests/"
			for p in $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$RTDP_ROOT/patches/series"); do
				checkpatch "$p" "$RTDP_ROOT/patches/$p"
			done
			for f in "$RTDP_ROOT"/selftests/*.[ch] "$RTDP_ROOT"/selftests/modules/*.c; do
				checkpatch "${f#"$RTDP_ROOT"/}" -f "$f"
			done
		}
		host_step checkpatch "$(inputs_key "$RTDP_ROOT/patches" "$RTDP_ROOT/selftests" \
			"$RTDP_WORK/scripts/checkpatch.pl")" checkpatch_all
	fi

	ko=$(bash "$RTDP_ROOT/scripts/module.sh") || fatal "build kvm_rtdp.ko$sfx" "see the messages above"
	record ok "build kvm_rtdp.ko$sfx"
	# Clippy, and the misuses the types rule out, which must not compile
	# (once: neither depends on the kernel's configuration).
	if [ "$flavour" = "${kernels%% *}" ]; then
		run_clippy() {
			log "host: clippy (CLIPPY=1)"
			bash "$RTDP_ROOT/scripts/clippy.sh" >>"$RTDP_RESULTS" 2>"$out/clippy.log" ||
				grep -q '^not ok clippy' "$RTDP_RESULTS" ||
				record "not ok" "clippy" "see $out/clippy.log"
		}
		compile_fail() {
			log "host: compile-fail cases (rust/compile_fail.rs)"
			bash "$RTDP_ROOT/scripts/compile-fail.sh" >>"$RTDP_RESULTS" 2>"$out/compile-fail.log" ||
				grep -q '^not ok compile-fail' "$RTDP_RESULTS" ||
				record "not ok" "compile-fail" "see $out/compile-fail.log"
		}
		rust_key=$( (inputs_key "$RTDP_ROOT/rust" "$RTDP_ROOT/scripts/clippy.sh" \
			"$RTDP_ROOT/scripts/compile-fail.sh"; bash "$RTDP_ROOT/scripts/kernel.sh" key) |
			sha256sum | cut -c1-16)
		host_step clippy "$rust_key" run_clippy
		host_step compile-fail "$rust_key" compile_fail
	fi
	# The selftests are built once, against the first kernel's headers:
	# both kernels share the binaries (scripts/kernel.sh).
	if [ "$flavour" = "${kernels%% *}" ]; then
		bash "$RTDP_ROOT/scripts/kernel.sh" selftests || fatal "build selftests" "see the messages above"
		record ok "build selftests"
	fi
	img="$out/$flavour/initramfs.cpio.gz"
	# T narrows the plan only where the plan runs; `make run`'s workload
	# is its rtdp_smoke entry.
	export RTDP_TESTS=
	[ $mode = check ] && RTDP_TESTS=$want_tests
	bash "$RTDP_ROOT/scripts/initramfs.sh" "$img" "$ko" ||
		fatal "build initramfs$sfx" "see the messages above"
	# The same inputs must give the same archive, byte for byte.
	bash "$RTDP_ROOT/scripts/initramfs.sh" "$img.again" "$ko" 2>/dev/null
	if cmp -s "$img" "$img.again"; then
		record ok "build initramfs$sfx (reproducible)"
	else
		record "not ok" "build initramfs$sfx (reproducible)" "two builds from the same inputs differ"
	fi
	rm -f "$img.again"

	tg=$SECONDS
	bash "$RTDP_ROOT/scripts/vm.sh" $mode "$img" "$out/$flavour" || true
	# Guest results are named guest[-flavour] NAME.
	g=guest${sfx:+-$flavour}
	grep -E '^(ok|not ok|skip) |^# ' "$out/$flavour/report.log" |
		sed "s/^\(ok\|not ok\|skip\) /&$g /" >>"$RTDP_RESULTS"
	grep -q '^rtdp-exit: ' "$out/$flavour/report.log" || grep -q '^not ok guest' "$out/$flavour/report.log" ||
		record "not ok" "$g" "no report from the guest"
	echo "# $flavour kernel: guest ($mode) took $((SECONDS - tg)) s" >>"$RTDP_RESULTS"
done
finish
