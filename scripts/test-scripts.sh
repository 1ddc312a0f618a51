#!/usr/bin/env bash
# Tests of the pipeline scripts themselves, on toy trees (no kernel needed).
# Prints one result line per test (ok/not ok NAME [# detail]) on stdout.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

pass() { echo "ok script $1"; }
fail() { echo "not ok script $1 # $2"; failed=1; }

# A pristine tree, a work copy and patches made with git, as for the kernel.
mk_patch() { # mk_patch OUT FILE NEWCONTENT: a git diff of FILE against pristine
	local d="$tmp/mk"
	rm -rf "$d"
	cp -a "$tmp/pristine" "$d"
	(cd "$d" && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base &&
		printf '%b' "$3" >"$2" && git add -A &&
		git -c user.name=t -c user.email=t@t commit -qm "change $2" &&
		git format-patch -q -1 --stdout) >"$1"
}
setup() {
	rm -rf "$tmp/pristine" "$tmp/work" "$tmp/patches"
	mkdir -p "$tmp/pristine/sub" "$tmp/patches"
	printf 'a\nb\nc\n' >"$tmp/pristine/sub/one.c"
	printf 'x\ny\n' >"$tmp/pristine/two.c"
	cp -a "$tmp/pristine" "$tmp/work"
	touch -d @1000000 "$tmp/work/sub/one.c" "$tmp/work/two.c"
}
apply() { bash "$here/apply-series.sh" "$tmp/pristine" "$tmp/work" "$tmp/patches" 2>"$tmp/err"; }

# 1. A series applies; only the file it changes gets a new mtime.
setup
mk_patch "$tmp/patches/0001-one.patch" sub/one.c 'a\nB\nc\n'
echo 0001-one.patch >"$tmp/patches/series"
if apply && [ "$(cat "$tmp/work/sub/one.c")" = "$(printf 'a\nB\nc')" ] &&
	[ "$(stat -c %Y "$tmp/work/two.c")" = 1000000 ] &&
	[ "$(stat -c %Y "$tmp/work/sub/one.c")" != 1000000 ]; then
	pass "series applies and touches only changed files"
else
	fail "series applies and touches only changed files" "$(cat "$tmp/err")"
fi

# 2. Re-applying an unchanged series changes nothing.
touch -d @2000000 "$tmp/work/sub/one.c"
if apply && [ "$(stat -c %Y "$tmp/work/sub/one.c")" = 2000000 ]; then
	pass "re-applying the same series leaves mtimes alone"
else
	fail "re-applying the same series leaves mtimes alone" "one.c was rewritten"
fi

# 3. A patch dropped from the series is undone from pristine.
: >"$tmp/patches/series"
if apply && cmp -s "$tmp/work/sub/one.c" "$tmp/pristine/sub/one.c"; then
	pass "a dropped patch is reverted to pristine"
else
	fail "a dropped patch is reverted to pristine" "one.c still patched"
fi

# 4. A conflicting patch stops setup, names the patch, shows the reject, and
#    leaves the work tree as it was.
setup
mk_patch "$tmp/patches/0001-one.patch" sub/one.c 'a\nB\nc\n'
mk_patch "$tmp/patches/0002-conflict.patch" sub/one.c 'a\nZ\nc\n'
printf '0001-one.patch\n0002-conflict.patch\n' >"$tmp/patches/series"
before=$(cat "$tmp/work/sub/one.c")
if apply; then
	fail "conflicting patch stops setup" "apply-series.sh succeeded"
elif ! grep -q 'patch 0002-conflict.patch does not apply' "$tmp/err"; then
	fail "conflicting patch stops setup" "error does not name the patch: $(head -c 300 "$tmp/err")"
elif ! grep -q -- '--- reject sub/one.c.rej' "$tmp/err" || ! grep -q '^+Z' "$tmp/err"; then
	fail "conflicting patch stops setup" "reject not shown: $(head -c 300 "$tmp/err")"
elif [ "$(cat "$tmp/work/sub/one.c")" != "$before" ]; then
	fail "conflicting patch stops setup" "work tree was modified"
else
	pass "conflicting patch stops setup with its name and reject"
fi

# 5. A series naming a missing file is an error, not a silent skip.
setup
echo 0009-missing.patch >"$tmp/patches/series"
if ! apply && grep -q '0009-missing.patch' "$tmp/err"; then
	pass "series naming a missing patch fails"
else
	fail "series naming a missing patch fails" "$(cat "$tmp/err")"
fi

# 6. The kernel cache key follows the series and the config fragment.
repo="$tmp/repo"
mkdir -p "$repo"
cp -a "$here/../scripts" "$here/../patches" "$repo/"
key() { bash "$repo/scripts/kernel.sh" key; }
k1=$(key)
k1again=$(key)
echo "# comment" >>"$repo/patches/series"
k2=$(key)
first=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$repo/patches/series" | head -n1)
if [ -n "$first" ]; then echo " " >>"$repo/patches/$first"; fi
k3=$(key)
echo "CONFIG_RTDP_TEST=y" >>"$repo/scripts/kernel.config"
k4=$(key)
if [ -n "$k1" ] && [ "$k1" = "$k1again" ] && [ "$k2" != "$k1" ] &&
	{ [ -z "$first" ] || [ "$k3" != "$k2" ]; } && [ "$k4" != "$k3" ]; then
	pass "cache key follows patches/ and the config fragment"
else
	fail "cache key follows patches/ and the config fragment" "keys: $k1 $k1again $k2 $k3 $k4"
fi

# 7. A pinned kernel version the archive no longer serves fails with the
#    versions it does serve and the variable to set.
if out=$(RTDP_CACHE="$tmp/cache" RTDP_KERNEL_DEB_VERSION=0.0-rtdp-missing \
	bash "$here/fetch-kernel.sh" 2>&1); then
	fail "missing pinned kernel version is reported" "fetch succeeded"
elif echo "$out" | grep -q 'available: .*[0-9]' && echo "$out" | grep -q RTDP_KERNEL_DEB_VERSION; then
	pass "missing pinned kernel version is reported with the available ones"
else
	fail "missing pinned kernel version is reported" "$(echo "$out" | tail -n 2 | tr '\n' ' ')"
fi

# 8. The report counts what it is given and ends with the closing line.
(
	RTDP_RESULTS="$tmp/results"
	printf 'ok a\nnot ok b # why\nskip c # SKIP no hw\n# note\nok d\n' >"$RTDP_RESULTS"
	source "$here/report.sh"
	report_ktap >"$tmp/ktap"
)
if [ "$(tail -n1 "$tmp/ktap")" = "2 passed, 1 failed, 1 skipped" ] &&
	grep -qx '1\.\.4' "$tmp/ktap" && grep -qx 'not ok 2 b # why' "$tmp/ktap" &&
	grep -qx 'ok 3 c # SKIP no hw' "$tmp/ktap"; then
	pass "KTAP report and closing count line"
else
	fail "KTAP report and closing count line" "$(tr '\n' '|' <"$tmp/ktap")"
fi

# 9. KUnit KTAP from a kernel log becomes one result per case, under the
#    guest's awk (busybox); a log without KUnit output is a failure.
cat >"$tmp/dmesg" <<'LOG'
[    2.000001] kvm_rtdp: loaded
[    2.000002]     KTAP version 1
[    2.000003]     # Subtest: rtdp_a
[    2.000004]     1..3
[    2.000005]     ok 1 first
[    2.000006]     not ok 2 second
[    2.000007]     ok 3 third # SKIP no hardware
[    2.000008] # rtdp_a: pass:1 fail:1 skip:1 total:3
[    2.000009] not ok 1 rtdp_a
    KTAP version 1
    # Subtest: rtdp_b
    ok 1 only
ok 2 rtdp_b
LOG
awk_cmd=(busybox awk)
busybox awk 'BEGIN{}' </dev/null 2>/dev/null || awk_cmd=(awk)
got=$("${awk_cmd[@]}" -f "$here/kunit-results.awk" "$tmp/dmesg")
want=$(printf '%s\n' "ok kunit rtdp_a.first" "not ok kunit rtdp_a.second" \
	"skip kunit rtdp_a.third # SKIP no hardware" "ok kunit rtdp_b.only")
none=$(echo "[ 1.0] nothing here" | "${awk_cmd[@]}" -f "$here/kunit-results.awk")
if [ "$got" = "$want" ] && [ "$none" = "not ok kunit # no KUnit results in the kernel log" ]; then
	pass "KUnit log parsing"
else
	fail "KUnit log parsing" "got: $(echo "$got" | tr '\n' '|') none: $none"
fi

# 10. How a guest run ended: its status, a crash, a hang, a kernel WARNING.
verdict() { # verdict CONSOLE-TEXT REPORT-TEXT QEMU-STATUS -> exit status
	printf '%b' "$1" >"$tmp/console"
	printf '%b' "$2" >"$tmp/report"
	bash "$here/vm-verdict.sh" "$tmp/console" "$tmp/report" "$3" 60 2>/dev/null
}
v_ok=0 v_fail=0 v_crash=0 v_hang=0 v_warn=0
verdict 'booted\n' 'ok x\nrtdp-exit: 0\n' 0 || v_ok=$?
verdict 'booted\n' 'not ok x\nrtdp-exit: 1\n' 0 || v_fail=$?
verdict 'Kernel panic - not syncing\n' 'ok x\n' 0 || v_crash=$?
crash_line=$(tail -n1 "$tmp/report")
verdict 'booted\n' 'ok x\n' 137 || v_hang=$?
hang_line=$(tail -n1 "$tmp/report")
verdict 'WARNING: CPU: 1 PID: 7 at arch/x86/kvm/mmu/tdp_mmu.c:1\n' 'ok x\nrtdp-exit: 0\n' 0 || v_warn=$?
if [ $v_ok = 0 ] && [ $v_fail = 1 ] && [ $v_crash = 1 ] && [ $v_hang = 1 ] && [ $v_warn = 1 ] &&
	[[ $crash_line == "not ok guest # guest stopped without reporting"* ]] &&
	[[ $hang_line == "not ok guest # guest hung"* ]]; then
	pass "guest verdict: status, crash, hang, kernel WARNING"
else
	fail "guest verdict: status, crash, hang, kernel WARNING" \
		"ok=$v_ok fail=$v_fail crash=$v_crash hang=$v_hang warn=$v_warn; $crash_line; $hang_line"
fi

# 11. Every checker's report fails a run that otherwise passed; a debug
# kernel's usual boot messages do not.
canned=(
	'BUG: KASAN: slab-use-after-free in kvm_rtdp::zap::zap_root+0x1d/0x80 [kvm_rtdp]'
	'WARNING: possible circular locking dependency detected'
	'WARNING: suspicious RCU usage'
	'[    7.1] =============================\n[    7.1] suspicious RCU usage. 7.3.4-rtdp-debug'
	'BUG: sleeping function called from invalid context at mm/slub.c:4117'
	'rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:'
	'rcu: INFO: rcu_preempt self-detected stall on CPU'
	'list_add corruption. prev->next should be next (ffff888100), but was 0000000000000000.'
	'ODEBUG: free active (active state 1) object: ffff88810 object type: rcu_head hint: 0x0'
	'BUG kmalloc-64 (Not tainted): Poison overwritten'
	'BUG kvm_mmu_page_header (Tainted: G        W  O): Object already free'
	'UBSAN: shift-out-of-bounds in arch/x86/kvm/mmu/mmu.c:3400:9'
	'kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)'
	'INFO: task rtdp_load_stre:117 blocked for more than 120 seconds.'
	'turning off the locking correctness validator.'
	'Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001'
)
missed=
for c in "${canned[@]}"; do
	verdict "[    3.2] booted\n[    9.9] $c\n" 'ok x\nrtdp-exit: 0\n' 0 && missed+="[$c] "
done
benign='[    0.0] KernelAddressSanitizer initialized (generic)\n'
benign+='[    0.1] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar\n'
benign+='[    0.2] kmemleak: Kernel memory leak detector initialized (mem pool available: 15719)\n'
benign+='[    0.3] Linux version 7.3.4-rtdp-debug (clang version 19.1.7)\n'
verdict "$benign" 'ok x\nrtdp-exit: 0\n' 0 || missed+="[benign boot messages failed the run] "
if [ -z "$missed" ]; then
	pass "guest verdict: every checker report fails the run (${#canned[@]} canned logs)"
else
	fail "guest verdict: every checker report fails the run (${#canned[@]} canned logs)" "missed: $missed"
fi

# 12. The debug kernel asks for its checkers; a later fragment wins.
opts_perf=$(bash "$here/kernel.sh" options 2>&1)
opts_debug=$(RTDP_KERNEL_FLAVOUR=debug bash "$here/kernel.sh" options 2>&1)
want=(CONFIG_PROVE_LOCKING=y CONFIG_PROVE_RCU=y CONFIG_KASAN=y CONFIG_DEBUG_KMEMLEAK=y
	CONFIG_FAILSLAB=y CONFIG_FAIL_PAGE_ALLOC=y CONFIG_KVM_PROVE_MMU=y
	CONFIG_RUST_DEBUG_ASSERTIONS=y 'CONFIG_LOCALVERSION="-rtdp-debug"')
lack=
for o in "${want[@]}"; do
	grep -qxF "$o" <<<"$opts_debug" || lack+="$o "
done
if [ -z "$lack" ] && grep -qx CONFIG_PROVE_LOCKING=n <<<"$opts_perf" &&
	[ "$(grep -c '^CONFIG_PROVE_LOCKING=' <<<"$opts_debug")" = 1 ] &&
	! grep -q LOCALVERSION <<<"$opts_perf" && grep -qx CONFIG_RUST=y <<<"$opts_debug"; then
	pass "kernel flavours: debug fragment over the perf one"
else
	fail "kernel flavours: debug fragment over the perf one" "debug lacks: $lack"
fi

# 13. make check T=...: the plan narrowed to the named entries in the plan's
# order; a name not in the plan is an error.
plan() { (RTDP_TESTS="$1" bash -c 'source "$0/common.sh"; rtdp_plan' "$here") 2>&1; }
narrowed=$(plan "nx_huge_pages_test rtdp_smoke" | awk '{ print $1 }' | tr '\n' ' ')
full=$(plan "" | grep -cvE '^[[:space:]]*(#|$)')
if [ "$narrowed" = "rtdp_smoke nx_huge_pages_test " ] && [ "$full" -ge 19 ] &&
	! plan "rtdp_smoke bogus_test" >"$tmp/plan.out" && grep -q 'T=bogus_test: no such entry' "$tmp/plan.out"; then
	pass "T= narrows the plan, refuses an unknown test"
else
	fail "T= narrows the plan, refuses an unknown test" "narrowed '$narrowed', full $full, $(cat "$tmp/plan.out")"
fi

# The profile report: blocks are charged to the function whose symbol
# precedes them (a module symbol after vmlinux's), user-space blocks to one
# row, and every count is divided by the operations of the run.
printf '%s\n' \
	$'ffffffff81000000\tS\tvmlinux\tkvm_entry' \
	$'ffffffff81000010\tT\t100\t300' \
	$'ffffffff81000020\tT\t100\t100' \
	$'ffffffffa0000000\tS\tkvm_rtdp\tkvm_rtdp::fault::map' \
	$'ffffffffa0000040\tT\t0\t400' \
	$'0000000000401000\tT\t50\t50' | LC_ALL=C sort -t "$(printf '\t')" -k1,1 -k2,2 |
	awk -F '\t' -v ops=10 -v unit=fault -v top=5 -v csv="$tmp/profile.csv" \
		-f "$here/profile/report.awk" >"$tmp/profile.txt"
if grep -qE '^kvm_entry +vmlinux +20\.0 +40\.0 +\+20\.0$' "$tmp/profile.txt" &&
	grep -qE '^kvm_rtdp::fault::map +kvm_rtdp +0\.0 +40\.0 +\+40\.0$' "$tmp/profile.txt" &&
	grep -qE '^\[user space\] +user +5\.0 +5\.0 ' "$tmp/profile.txt" &&
	grep -qE '^total +25\.0 +85\.0 +\+60\.0$' "$tmp/profile.txt" &&
	grep -q '^"kvm_rtdp::fault::map",kvm_rtdp,0,400,0.00,40.00$' "$tmp/profile.csv"; then
	pass "profile report: functions, user space, per-operation counts"
else
	fail "profile report: functions, user space, per-operation counts" "$(tr '\n' '|' <"$tmp/profile.txt")"
fi

# The bench report: medians over repetitions, Rust/C, the geometric mean
# over phases whose C median is at least 50 ms, and populate_<N>M entries
# divided by their 4 KiB pages.
printf '%s\n' \
	'bench demand_paging c 0 2.0 Total guest execution time' \
	'bench demand_paging rust 0 1.0 Total guest execution time' \
	'bench demand_paging c 1 3.0 Total guest execution time' \
	'bench demand_paging rust 1 2.0 Total guest execution time' \
	'bench demand_paging c 2 4.0 Total guest execution time' \
	'bench demand_paging rust 2 9.0 Total guest execution time' \
	'bench tiny c 0 0.010 Clear time' \
	'bench tiny c 0 0.020 Clear time' \
	'bench tiny rust 0 0.030 Clear time' \
	'bench populate_1M c 0 0.256 Total guest execution time' \
	$'bench populate_1M rust 0 0.128 Total guest execution time\r' |
	awk -v csv="$tmp/bench.csv" -v plot="$tmp/bench.dat" -v scale="$tmp/scale.txt" \
		-f "$here/bench-report.awk" >"$tmp/bench.txt"
# demand_paging: medians 3.0 and 2.0 (0.67); tiny: below 50 ms, no mean;
# populate_1M: 0.5; geometric mean sqrt(0.6667 * 0.5) = 0.577; 256 pages:
# 1000 and 500 us per page.
if grep -qE '^demand_paging +Total guest execution time +3\.000 \[2\.000-4\.000\] +2\.000 \[1\.000-9\.000\] +0\.67$' "$tmp/bench.txt" &&
	grep -q 'over the 2 phases with C >= 50 ms: 0.577$' "$tmp/bench.txt" &&
	grep -qE '^1 MiB +1000\.000 +500\.000 +0\.50$' "$tmp/scale.txt" &&
	[ "$(wc -l <"$tmp/bench.dat")" = 2 ] &&
	[ "$(head -1 "$tmp/bench.csv")" = benchmark,phase,column,rep,seconds ] &&
	grep -qx 'populate_1M,Total guest execution time,rust,0,0.128' "$tmp/bench.csv" &&
	grep -qx 'tiny,Clear time (2),c,0,0.020' "$tmp/bench.csv"; then
	pass "bench report: medians, ratio, geometric mean, cost per page"
else
	fail "bench report: medians, ratio, geometric mean, cost per page" "$(cat "$tmp/bench.txt" "$tmp/scale.txt" 2>&1 | tr '\n' '|')"
fi

# 17. Host steps: with T= a step whose inputs are those of a passing run
# replays its results, without running; a failing run is never replayed;
# a full run (no T=) always runs the step.
(
	host_cache="$tmp/hs-cache" out="$tmp/hs-out" RTDP_RESULTS="$tmp/hs-results"
	mkdir -p "$out"
	: >"$RTDP_RESULTS"
	record() { if [ -n "${3:-}" ]; then echo "$1 $2 # $3"; else echo "$1 $2"; fi >>"$RTDP_RESULTS"; }
	log() { :; }
	# shellcheck source=host-steps.sh
	source "$here/host-steps.sh"
	runs=0
	good() { echo run >>"$tmp/hs-runs"; record ok "step works"; }
	bad() { echo run >>"$tmp/hs-runs-bad"; record "not ok" "step broke"; }
	want_tests=x
	host_step good k1 good
	host_step good k1 good
	host_step good k2 good
	want_tests=
	host_step good k2 good
	want_tests=x
	host_step bad k1 bad
	host_step bad k1 bad
	[ "$(wc -l <"$tmp/hs-runs")" = 3 ] && [ "$(wc -l <"$tmp/hs-runs-bad")" = 2 ] &&
		[ "$(grep -c '^ok step works' "$RTDP_RESULTS")" = 4 ] &&
		[ "$(grep -c '^# host good: inputs as in the run of' "$RTDP_RESULTS")" = 1 ] &&
		[ "$(grep -c '^not ok step broke' "$RTDP_RESULTS")" = 2 ] &&
		[ "$(find "$host_cache" -name 'good-*' | wc -l)" = 1 ]
) && pass "T= replays a passing host step with the same inputs, nothing else" ||
	fail "T= replays a passing host step with the same inputs, nothing else" \
		"runs $(cat "$tmp/hs-runs" 2>/dev/null | wc -l), bad $(cat "$tmp/hs-runs-bad" 2>/dev/null | wc -l): $(tr '\n' '|' <"$tmp/hs-results")"

# The unsafe check passes on our rust/ and fails on each way out of it.
unsafe_case() { # unsafe_case NAME EXPECT(ok|fail) MUTATION-COMMAND
	local name=$1 want=$2 got
	rm -rf "$tmp/u"
	mkdir -p "$tmp/u"
	cp -a "$here/../rust" "$tmp/u/"
	(cd "$tmp/u/rust" && eval "$3")
	got=$(bash "$here/unsafe-check.sh" "$tmp/u/rust")
	case "$want:$got" in
	ok:"ok unsafe confined"* | fail:"not ok unsafe confined"*) pass "unsafe check: $name" ;;
	*) fail "unsafe check: $name" "got: $got" ;;
	esac
}
unsafe_case "the tree as it is passes" ok ':'
unsafe_case "a logic module without forbid fails" fail \
	"perl -0pi -e 's/#\[forbid\(unsafe_code\)\]\nmod zap;/mod zap;/' kvm_rtdp.rs"
unsafe_case "a core module without forbid fails" fail \
	"perl -0pi -e 's/#\[forbid\(unsafe_code\)\]\npub mod iter;/pub mod iter;/' kvm_rtdp.rs"
unsafe_case "a new file not declared in the root fails" fail "echo '// x' >helpers.rs"
unsafe_case "unsafe in the crate root fails" fail \
	"echo 'fn f() { unsafe { core::hint::unreachable_unchecked() } }' >>kvm_rtdp.rs"
unsafe_case "the host crate without its forbid lint fails" fail \
	"sed -i '/^unsafe_code/d' core/Cargo.toml"

# compile-fail.sh reads each case's expected error and refuses malformed cases.
cf_list() { RTDP_COMPILE_FAIL_SRC="$1" bash "$here/compile-fail.sh" --list 2>&1; }
cat >"$tmp/cf.rs" <<'CASES'
#[cfg(any(rtdp_case_good, rtdp_twin_good))]
fn good() {
    #[cfg(not(rtdp_twin_good))]
    misuse(); //~ ERROR E0502 cannot borrow `x`
}
#[cfg(any(rtdp_case_no_marker, rtdp_twin_no_marker))]
fn no_marker() {
    #[cfg(not(rtdp_twin_no_marker))]
    misuse();
}
#[cfg(any(rtdp_case_two, rtdp_twin_two))]
fn two() {
    #[cfg(not(rtdp_twin_two))]
    a(); //~ ERROR E0308 expected
    b(); //~ ERROR E0308 expected
}
#[cfg(any(rtdp_case_no_twin, rtdp_twin_no_twin))]
fn no_twin() {
    misuse(); //~ ERROR E0382 use of moved value
}
CASES
got=$(cf_list "$tmp/cf.rs")
want='good 4 E0502 cannot borrow `x`
no_marker 0 BAD 0 //~ ERROR markers
two 0 BAD 2 //~ ERROR markers
no_twin 0 BAD no #[cfg(not(rtdp_twin_no_twin))] line'
[ "$got" = "$want" ] && pass "compile-fail cases: line, code and fragment parsed; malformed ones refused" ||
	fail "compile-fail cases: line, code and fragment parsed; malformed ones refused" "$(echo "$got" | tr '\n' '|')"
[ "$(cf_list "$here/../rust/compile_fail.rs" | grep -vc ' BAD ')" -ge 6 ] &&
	! cf_list "$here/../rust/compile_fail.rs" | grep -q ' BAD ' &&
	pass "compile-fail cases of rust/compile_fail.rs are well formed" ||
	fail "compile-fail cases of rust/compile_fail.rs are well formed" "$(cf_list "$here/../rust/compile_fail.rs" | tr '\n' '|')"

# A cargo run is judged by its exit status and every harness's result line.
(
	# shellcheck source=report.sh
	source "$here/report.sh"
	printf 'running 2 tests\ntest a ... ok\ntest b ... ok\n\ntest result: ok. 2 passed; 0 failed\n' >"$tmp/c-ok"
	printf 'running 3 tests\ntest a ... ok\ntest b ... ok\nerror: test failed, to rerun pass `--lib`\n' >"$tmp/c-abort"
	printf 'running 1 test\ntest a ... FAILED\n\ntest result: FAILED. 0 passed; 1 failed\n' >"$tmp/c-fail"
	[ -z "$(cargo_verdict "$tmp/c-ok" 0)" ] &&
		[ -n "$(cargo_verdict "$tmp/c-ok" 101)" ] &&
		[ -n "$(cargo_verdict "$tmp/c-abort" 0)" ] &&
		[ -n "$(cargo_verdict "$tmp/c-abort" 101)" ] &&
		[ -n "$(cargo_verdict "$tmp/c-fail" 0)" ] &&
		[ -n "$(cargo_verdict /dev/null 0)" ]
) && pass "cargo runs: exit status, aborted and failed harnesses fail" ||
	fail "cargo runs: exit status, aborted and failed harnesses fail" "cargo_verdict let one through"

# The guest's verdict rules (plan.sh), each run as the guest runs them:
# sourced by busybox sh. g CASE-SCRIPT: run it there, with $P a toy plan.
gsh=sh
command -v busybox >/dev/null && gsh="busybox sh"
cat >"$tmp/plan" <<'PLAN'
# comment
a_test    both        60  a -x
b_test    both@perf   60  b
c_test    rust        60  c
d_test    both+retry  60  d
e_test    rust+retry  60  e
@retry-on e_test 254 get_ucall(vcpu, NULL) == UCALL_SYNC
f_test    both@perf+retry 60 f
@may-skip c_test no fault injection here
PLAN
g() { P=$tmp/plan T=$tmp $gsh -c ". '$here/plan.sh'; $1" 2>&1; }
verdict() { # verdict NAME WANT GOT
	if [ "$3" = "$2" ]; then pass "guest verdict rules: $1"; else fail "guest verdict rules: $1" "want [$2], got [$3]"; fi
}
verdict "a well-formed plan passes plan_check" "0" "$(g 'plan_check $P; echo $?')"
bad_plans=(
	'x both+retry@perf 60 x'	'columns "both+retry@perf"'
	'x rsut 60 x'			'columns "rsut"'
	'x both@perf@perf 60 x'		'columns "both@perf@perf"'
	'x c 60 x'			'columns "c"'
	'x both 0 x'			'timeout "0"'
	'x both 1m x'			'timeout "1m"'
	'x both 60'			'an entry is NAME COLUMNS TIMEOUT COMMAND'
	'a_test rust 60 x'		'entry a_test again'
	'@retry-on nobody 254 text'	'@retry-on of no entry nobody'
	'@retry-on a_test 254 text'	'@retry-on of a_test, an entry without +retry'
	'@retry-on d_test 4 text'	'EXIT is a failing exit status'
	'@retry-on d_test 254'		'@retry-on needs NAME EXIT TEXT'
	'@may-skip a_test text'		'@may-skip of a_test, not a rust entry'
	'@may-skip nobody text'		'@may-skip of no entry nobody'
	'@maybe a_test'			'unknown declaration'
	'x rust+retry 60 x'		'x: a rust entry with +retry needs a @retry-on'
)
missed=
for ((i = 0; i < ${#bad_plans[@]}; i += 2)); do
	{ cat "$tmp/plan"; echo "${bad_plans[i]}"; } >"$tmp/bad"
	out=$(P=$tmp/bad $gsh -c ". '$here/plan.sh'; plan_check \$P" 2>&1) && missed="$missed[${bad_plans[i]}: passed] "
	case "$out" in *"${bad_plans[i + 1]}"*) ;; *) missed="$missed[${bad_plans[i]}: $out] " ;; esac
done
verdict "plan_check refuses each malformed line, saying why ($((${#bad_plans[@]} / 2)) cases)" "" "$missed"
verdict "the real plan is well formed" "" "$(P=$here/../selftests/vm-tests.list $gsh -c ". '$here/plan.sh'; plan_check \$P" 2>&1)"
verdict "debug C column: both entries but @perf, with their retry flag" \
	"a_test both 0 60 a -x|d_test both 1 60 d" "$(g 'plan_select $P c all 1' | tr '\n' '|' | sed 's/|$//')"
verdict "perf Rust column: the @perf entries of both kinds" \
	"b_test both 0 60 b|f_test both 1 60 f" "$(g 'plan_select $P rust perf 0' | tr '\n' '|' | sed 's/|$//')"
verdict "perf kernel, make check T=: every entry" "6" "$(g 'plan_select $P rust all 0 | wc -l' | tr -d ' ')"
# Retries: in the C column for a +retry entry; in the Rust column only
# after C's first run failed, or for the symptom the plan names.
printf 'x\n  get_ucall(vcpu, NULL) == UCALL_SYNC\n' >"$tmp/sym.log"
printf 'x\nsomething else\n' >"$tmp/other.log"
printf 'd_test c 254\ne_test c 0\n' >"$tmp/first"
verdict "retry: a C-column failure" "0" "$(g 'retry_reason $P $T/first c d_test 1 $T/other.log >/dev/null; echo $?')"
verdict "retry: Rust after C's first run failed" "C's first run failed too (exit 254)" \
	"$(g 'retry_reason $P $T/first rust d_test 1 $T/other.log')"
printf 'd_test c 0\n' >"$tmp/first-ok"
verdict "no retry: a Rust-only failure" "1" "$(g 'retry_reason $P $T/first-ok rust d_test 254 $T/sym.log; echo $?')"
verdict "no retry: Rust, C skipped" "1" "$(printf 'd_test c 4\n' >"$tmp/first-skip"; g 'retry_reason $P $T/first-skip rust d_test 254 $T/sym.log; echo $?')"
verdict "retry: Rust, the named symptom" "0" "$(g 'retry_reason $P $T/first rust e_test 254 $T/sym.log >/dev/null; echo $?')"
verdict "no retry: Rust, the named text with another exit" "1" "$(g 'retry_reason $P $T/first rust e_test 1 $T/sym.log; echo $?')"
verdict "no retry: Rust, the named exit with other text" "1" "$(g 'retry_reason $P $T/first rust e_test 254 $T/other.log; echo $?')"
# Skips of rust entries: only as declared.
printf '1..0 # SKIP - no fault injection here\n' >"$tmp/skip.log"
verdict "skip: declared, and its text in the log" "0" "$(g 'skip_reason $P c_test $T/skip.log >/dev/null; echo $?')"
verdict "skip: declared, another message" "1" "$(g 'skip_reason $P c_test $T/other.log; echo $?')"
verdict "skip: not declared" "1" "$(g 'skip_reason $P e_test $T/skip.log; echo $?')"
# One result per entry, per column; what passed on C passes on Rust.
printf 'a_test c ok 1s\nd_test c ok-on-retry 2s\na_test rust ok 1s\nc_test rust ok 1s\nd_test rust fail 1s\nd_test rust ok 1s\n' >"$tmp/cols"
verdict "each column: the complete one passes" "" "$(g 'column_missing $P $T/cols c all 1')"
verdict "each column: a missing result and a double one" "d_test(2) e_test(0) " "$(g 'column_missing $P $T/cols rust all 1')"
printf 'a_test c ok 1s\nd_test c ok-on-retry 2s\nb_test c skip 1s\na_test rust fail 1s\nd_test rust ok 1s\nb_test rust fail 1s\n' >"$tmp/lost"
verdict "every test passing on C passes on Rust" "a_test " "$(g 'columns_lost $T/lost')"

exit $failed
