#!/bin/busybox sh
# /init of the rtdp test guest (busybox). Installed by scripts/initramfs.sh.
#
# The kernel command line selects the mode:
#   rtdp.mode=run    load the modules, run the rtdp_smoke workload, report it
#   rtdp.mode=perf   as run, and the plan's @perf entries in both columns
#                    (make check's pass on the perf kernel)
#   rtdp.mode=check  run /tests/plan on the C TDP MMU, load kvm_rtdp, run it
#                    again on Rust, compare the columns, unload kvm_rtdp
#   rtdp.mode=bench  the entries of /tests/bench, C and Rust alternating
#   rtdp.mode=profile one entry of /tests/profile (rtdp.profile=NAME) on C,
#                    then on Rust, between snapshot markers
#   rtdp.mode=shell  load the modules and kvm_rtdp, then an interactive shell
#                    on the console (ttyS0); its exit ends the guest
#
# Results go to ttyS1 as lines the host reads (scripts/vm.sh):
#   ok|not ok|skip <name> [# detail]     one per test
#   # text                               context, printed by the host as is
#   rtdp-exit: N                         last line; N is the guest's status
# ttyS0 stays the kernel console. A missing rtdp-exit line means the guest
# crashed or hung.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /tmp/log

exec 3>/dev/ttyS1
say() { echo "$*" >&3; }
# The plan's grammar and the verdict rules (scripts/plan.sh).
. /lib/plan.sh
failed=0
result() { # result ok|not ok|skip name [detail]
	case "$1" in "not ok") failed=1 ;; esac
	if [ -n "$3" ]; then say "$1 $2 # $3"; else say "$1 $2"; fi
}
finish() {
	say "rtdp-exit: $failed"
	sync
	reboot -f
	sleep 10
}

mode=run
for arg in $(cat /proc/cmdline); do
	case "$arg" in rtdp.mode=*) mode=${arg#rtdp.mode=} ;; esac
done
say "# guest: $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB, mode $mode"

# Load a module; on failure report it and stop, since nothing after can run.
load() { # load name file
	if out=$(insmod "$2" 2>&1); then
		result ok "load $1"
	else
		result "not ok" "load $1" "$out"
		dmesg | tail -n 20 | sed 's/^/# /' >&3
		finish
	fi
}

grep -qw svm /proc/cpuinfo || { result "not ok" "cpu has svm" "run QEMU with -cpu max"; finish; }

# Per-test timeouts of the plan are multiplied by rtdp.tscale (the debug
# kernel runs the same tests several times slower).
tscale=1
for arg in $(cat /proc/cmdline); do
	case "$arg" in rtdp.tscale=*) tscale=${arg#rtdp.tscale=} ;; esac
done

# The debug kernel (its release ends in -rtdp-debug) must have its checkers
# on, or a clean run of it proves nothing.
debug=0
case "$(uname -r)" in *-rtdp-debug) debug=1 ;; esac
KMEMLEAK=/sys/kernel/debug/kmemleak
checkers() {
	lockdep=off kasan=off kmemleak=off
	grep -Eq '^ *debug_locks: +1$' /proc/lockdep_stats 2>/dev/null && lockdep=on
	dmesg | grep -q 'KernelAddressSanitizer initialized' && kasan=on
	[ -w $KMEMLEAK ] && kmemleak=on
	say "# checkers: lockdep $lockdep, KASAN $kasan, kmemleak $kmemleak"
	if [ $lockdep$kasan$kmemleak = ononon ]; then
		result ok "debug kernel: lockdep, KASAN and kmemleak on"
	else
		result "not ok" "debug kernel: lockdep, KASAN and kmemleak on" \
			"lockdep $lockdep, KASAN $kasan, kmemleak $kmemleak"
	fi
}
# kmemleak reports an object only once it is 5 s old and unreferenced in two
# scans: scan, wait, scan; any suspect fails. Reported objects are cleared,
# so the next column answers for its own.
leak_check() { # leak_check NAME
	echo scan >$KMEMLEAK
	sleep 6
	echo scan >$KMEMLEAK
	n=$(grep -c '^unreferenced object' $KMEMLEAK)
	if [ "$n" -eq 0 ]; then
		result ok "kmemleak: $1"
	else
		result "not ok" "kmemleak: $1" "$n suspected leaks"
		head -n 40 $KMEMLEAK | sed 's/^/# | /' >&3
	fi
	echo clear >$KMEMLEAK
}
lockdep_still_on() {
	if grep -Eq '^ *debug_locks: +1$' /proc/lockdep_stats; then
		result ok "lockdep still on at the end"
	else
		result "not ok" "lockdep still on at the end" "it turned itself off: see the console"
	fi
}
M=/lib/modules
[ -f $M/irqbypass.ko ] && load irqbypass $M/irqbypass.ko
load kvm $M/kvm.ko
load kvm-amd $M/kvm-amd.ko
# Test hook for rtdp_rcu_storm_test: holds back RCU grace periods on request.
[ "$mode" = check ] && load rtdp_rcu_hold $M/rtdp_rcu_hold.ko

provider() { cat /sys/module/kvm/parameters/tdp_mmu_provider 2>/dev/null; }

# What the guest kernel enabled against CPU vulnerabilities: a benchmark
# names the mitigations its numbers were taken under.
mitigations() {
	for f in /sys/devices/system/cpu/vulnerabilities/*; do
		say "# mitigation $(basename "$f"): $(cat "$f")"
	done
}

# A second provider must be refused while kvm_rtdp is registered, and so must
# an ops table of another layout; insmod reports kvm.ko's error.
refused() { # refused NAME WANT-ERROR insmod-args...
	name=$1 want=$2
	shift 2
	if out=$(insmod "$@" 2>&1); then
		rmmod kvm_rtdp_second
		result "not ok" "$name" "insmod succeeded"
	elif echo "$out" | grep -qi "$want"; then
		result ok "$name"
	else
		result "not ok" "$name" "$out"
	fi
}

# Load kvm_rtdp; in check mode also test the refusals, and report the KTAP
# that its KUnit suites logged at insmod (not the kernel's boot-time suites)
# as one line per case.
load_rtdp() {
	dmesg_before=$(dmesg | wc -l)
	load kvm_rtdp $M/kvm_rtdp.ko
	say "# kvm.tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) kvm_amd.npt=$(cat /sys/module/kvm_amd/parameters/npt) kvm.tdp_mmu_provider=$(provider)"
	if [ "$mode" = check ]; then
		refused "second provider refused (EBUSY)" "busy" $M/kvm_rtdp_second.ko
		refused "provider with another ops layout refused (EINVAL)" "invalid" \
			$M/kvm_rtdp_second.ko bad_size=1
	fi
	# kvm_rtdp's messages, and kvm.ko's on the registration (how many of
	# the entries and hooks kvm_rtdp serves).
	dmesg | tail -n +$((dmesg_before + 1)) |
		sed -n -e 's/^\(\[[^]]*\] \)\{0,1\}kvm_rtdp: /# kvm_rtdp: /p' \
			-e 's/^\(\[[^]]*\] \)\{0,1\}kvm: \(TDP MMU provider kvm_rtdp \)/# kvm: \2/p' >&3
	if [ "$mode" = check ]; then
		# kvm.ko counts them from its list of entries and hooks: every
		# one must be served by Rust.
		served=$(dmesg | tail -n +$((dmesg_before + 1)) |
			sed -n 's/.*TDP MMU provider kvm_rtdp registered, serving \([0-9]*\) of \([0-9]*\) entries and \([0-9]*\) of \([0-9]*\) hooks.*/\1 \2 \3 \4/p' | tail -n 1)
		set -- $served
		if [ $# -eq 4 ] && [ "$1" = "$2" ] && [ "$3" = "$4" ]; then
			result ok "kvm_rtdp serves every TDP MMU entry and hook" "$1 of $2 entries, $3 of $4 hooks"
		else
			result "not ok" "kvm_rtdp serves every TDP MMU entry and hook" "kvm.ko says: ${served:-nothing}"
		fi
		dmesg | tail -n +$((dmesg_before + 1)) | awk -f /lib/kunit-results.awk >&3
	fi
}

: >/tmp/columns
: >/tmp/retried
: >/tmp/firstruns
run_once() { # run_once timeout log cmd...: the exit status, 137 at timeout
	t=$1 log=$2
	shift 2
	bin=$1
	shift
	# A test knows its column (selftests/rtdp_util.h, rtdp_rust_column()).
	# Its stdin is not the plan the caller reads.
	(cd /tests && RTDP_COLUMN=$col timeout -s KILL "$t" "./$bin" "$@") >"$log" 2>&1 </dev/null
}

# The verdict rules are plan.sh's: a "+retry" entry's failed first run gets
# a second run, which decides, when retry_reason allows it (both runs are
# reported, with the reason); a skip of a "rust" entry fails unless the plan
# declares it (skip_reason).
run_test() { # run_test column kind name retry timeout cmd...
	col=$1 kind=$2 name=$3 retry=$4 t=$5
	shift 5
	start=$(cut -d. -f1 /proc/uptime)
	log=/tmp/log/$col.${name##*/}.log
	t=$((t * tscale))
	run_once "$t" "$log" "$@"
	rc=$?
	echo "$name $col $rc" >>/tmp/firstruns
	first=
	if [ "$retry" = 1 ] && [ $rc -ne 0 ] && [ $rc -ne 4 ]; then
		secs=$(($(cut -d. -f1 /proc/uptime) - start))
		first="run 1: exit $rc after ${secs}s"
		[ $rc -eq 137 ] && first="run 1: TIMEOUT after ${t}s"
		if why=$(retry_reason /tests/plan /tmp/firstruns "$col" "$name" $rc "$log"); then
			say "# $col/$name failed its first run ($first); retried: $why; its last lines:"
			tail -n 25 "$log" | sed 's/^/# | /' >&3
			echo "$col/$name ($why)" >>/tmp/retried
			start=$(cut -d. -f1 /proc/uptime)
			run_once "$t" "$log" "$@"
			rc=$?
			first="$first; retried ($why); run 2: "
		else
			first="$first; not retried (C's first run passed, and it is not the symptom the plan names); "
		fi
	fi
	secs=$(($(cut -d. -f1 /proc/uptime) - start))
	skipped="SKIP $(grep -m1 -i skip "$log")"
	case $rc in
	0) st=ok; result ok "$col/$name" "$first${first:+ok after }${secs}s" ;;
	4) if [ "$kind" = both ] || why=$(skip_reason /tests/plan "$name" "$log"); then
		st=skip; result skip "$col/$name" "$first$skipped${why:+ ($why)}"
	   else
		st=fail; result "not ok" "$col/$name" "$first$skipped: a rust entry the plan does not let skip so"
	   fi ;;
	137) st=fail; result "not ok" "$col/$name" "${first}TIMEOUT after ${t}s" ;;
	*) st=fail; result "not ok" "$col/$name" "${first}exit $rc after ${secs}s" ;;
	esac
	why=
	[ -n "$first" ] && st=$st-on-retry
	echo "$name $col $st ${secs}s" >>/tmp/columns
	# Numbers a test reports for the README, passing or not.
	sed -n 's/^rtdp-report: /# | /p' "$log" >&3
	if [ $rc -ne 0 ] || { [ "$mode" != check ] && [ "$name" = rtdp_smoke ]; }; then
		tail -n 25 "$log" | sed 's/^/# | /' >&3
	fi
}

# An entry whose columns end in "@perf" runs only on the perf kernel: in
# the perf guest of a full make check (mode perf), or in a check-mode guest
# on the perf kernel (make check T=...); the debug guest skips it.
which=all
run_column() { # run_column c|rust [perf]: every entry, or only @perf ones
	which=${2:-all}
	[ $debug = 1 ] && [ "$1" = c ] &&
		awk '!/^[[:space:]]*(#|$|@)/ && $2 ~ /@perf/ { print "# " $1 ": perf kernel only (its perf guest runs it)" }' /tests/plan >&3
	plan_select /tests/plan "$1" "$which" $debug >/tmp/selected.$1
	while read -r name kind retry t cmd; do
		# shellcheck disable=SC2086
		run_test "$1" "$kind" "$name" "$retry" "$t" $cmd
	done </tmp/selected.$1
}

# The two columns side by side, and whether every test that passed on C
# passed on Rust.
compare_columns() {
	say "# test                              C                Rust"
	awk '
		{ st[$1 " " $2] = $3 " " $4; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
		END {
			for (i = 0; i < n; i++) {
				t = order[i]
				c = (t " c") in st ? st[t " c"] : "-"
				r = (t " rust") in st ? st[t " rust"] : "-"
				printf "# %-33s %-16s %s\n", t, c, r
			}
		}' /tmp/columns >&3
	for col in c rust; do
		missing=$(column_missing /tests/plan /tmp/columns $col "$which" $debug)
		if [ -z "$missing" ]; then
			result ok "$col column: one result per entry"
		else
			result "not ok" "$col column: one result per entry" "results (count) of: $missing"
		fi
	done
	lost=$(columns_lost /tmp/columns)
	if [ -z "$lost" ]; then
		result ok "every test passing on C passes on Rust"
	else
		result "not ok" "every test passing on C passes on Rust" "not on Rust: $lost"
	fi
	if [ -s /tmp/retried ]; then
		say "# second runs (each after a failed first run): $(tr '\n' ' ' </tmp/retried)"
	fi
}

# A plan that is not what plan.sh takes runs nothing: each bad line is
# reported (make check also checks it on the host before it boots).
case "$mode" in
check | perf)
	if bad=$(plan_check /tests/plan); then
		result ok "test plan well formed"
	else
		result "not ok" "test plan well formed" "see below"
		echo "$bad" | sed 's/^/# /' >&3
		finish
	fi
	;;
esac

case "$mode" in
run | perf)
	# perf: make check's pass on the perf kernel also runs the plan's @perf
	# entries, C column first.
	[ "$mode" = perf ] && run_column c perf
	load_rtdp
	# The plan's own rtdp_smoke entry, so the two modes cannot drift apart.
	# shellcheck disable=SC2046
	set -- $(grep '^rtdp_smoke[[:space:]]' /tests/plan)
	if [ $# -ge 4 ]; then
		name=$1 t=$3
		shift 3
		run_test rust both "$name" 0 "$t" "$@"
	else
		result "not ok" rtdp_smoke "no rtdp_smoke entry in /tests/plan"
	fi
	if [ "$mode" = perf ]; then
		run_column rust perf
		compare_columns
	fi
	;;
check)
	[ $debug = 1 ] && checkers
	say "# C column: VMs on kvm.ko's TDP MMU (kvm.tdp_mmu_provider=$(provider))"
	run_column c
	[ $debug = 1 ] && leak_check "C column"
	load_rtdp
	say "# Rust column: VMs bound to kvm_rtdp"
	run_column rust
	compare_columns
	if out=$(rmmod kvm_rtdp 2>&1) && [ ! -d /sys/module/kvm_rtdp ]; then
		result ok "unload kvm_rtdp"
	else
		result "not ok" "unload kvm_rtdp" "$out"
	fi
	if [ $debug = 1 ]; then
		leak_check "Rust column and unload"
		lockdep_still_on
	fi
	;;
bench)
	# Alternate the columns, so that drift over the run hits both alike.
	# Lines: bench NAME COLUMN REP SECONDS PHASE
	reps=1
	for arg in $(cat /proc/cmdline); do
		case "$arg" in rtdp.reps=*) reps=${arg#rtdp.reps=} ;; esac
	done
	say "# bench: $reps repetitions, C then Rust each time"
	mitigations
	rep=1
	while [ $rep -le "$reps" ]; do
		for col in c rust; do
			if [ $col = rust ]; then
				insmod $M/kvm_rtdp.ko || { result "not ok" "load kvm_rtdp"; finish; }
			fi
			while read -r name t cmd; do
				case "$name" in "" | \#*) continue ;; esac
				log=/tmp/log/bench.$name.$col.$rep
				# shellcheck disable=SC2086
				if (cd /tests && timeout -s KILL "$t" ./$cmd) >"$log" 2>&1; then
					awk -v n="$name" -v c=$col -v r=$rep '
						/:[ \t]*[0-9]+\.[0-9]+s$/ {
							s = $0; sub(/s$/, "", s); v = s; sub(/.*:[ \t]*/, "", v)
							sub(/:[ \t]*[0-9.]+$/, "", s); gsub(/[ \t,]+/, " ", s)
							print "bench", n, c, r, v, s
						}' "$log" >&3
				else
					result "not ok" "bench $col/$name run $rep"
					tail -n 15 "$log" | sed 's/^/# | /' >&3
				fi
			done </tests/bench
			[ $col = rust ] && { rmmod kvm_rtdp || { result "not ok" "unload kvm_rtdp"; finish; }; }
		done
		rep=$((rep + 1))
	done
	;;
profile)
	# One entry of /tests/profile on C, then on Rust. /bin/rtdp_mark makes
	# the insn-count QEMU plugin snapshot its counts: 0 and 1 around the C
	# run, 2 and 3 around the Rust run. Lines: profile-ksym ADDR NAME MODULE
	# (module symbols, for the host's report).
	want=
	for arg in $(cat /proc/cmdline); do
		case "$arg" in rtdp.profile=*) want=${arg#rtdp.profile=} ;; esac
	done
	# shellcheck disable=SC2046
	set -- $(grep "^$want[[:space:]]" /tests/profile)
	[ $# -ge 5 ] || { result "not ok" "profile" "no entry $want in /tests/profile"; finish; }
	name=$1 t=$4
	shift 4
	mitigations
	for col in c rust; do
		if [ $col = rust ]; then
			insmod $M/kvm_rtdp.ko || { result "not ok" "load kvm_rtdp"; finish; }
			grep -E '\[(kvm|kvm_amd|kvm_rtdp)\]' /proc/kallsyms |
				awk '$2 ~ /^[tTwW]$/ { gsub(/[][]/, "", $4); print "profile-ksym", $1, $3, $4 }' >&3
		fi
		/bin/rtdp_mark
		# shellcheck disable=SC2086
		(cd /tests && timeout -s KILL "$t" ./"$@") >/tmp/log/profile.$col 2>&1
		rc=$?
		/bin/rtdp_mark
		if [ $rc -eq 0 ]; then
			result ok "profile $col/$name"
		else
			result "not ok" "profile $col/$name" "exit $rc"
			tail -n 15 /tmp/log/profile.$col | sed 's/^/# | /' >&3
		fi
	done
	rmmod kvm_rtdp || result "not ok" "unload kvm_rtdp"
	;;
shell)
	load_rtdp
	cat >/dev/console <<-EOT

		rtdp shell on $(uname -r): kvm, kvm-amd and kvm_rtdp are loaded
		(new VMs bind to it: kvm.tdp_mmu_provider=$(provider)); the selftests
		are in /tests (/tests/plan has each one's command line), kvm_rtdp's
		debugfs in /sys/kernel/debug/kvm_rtdp.
		rmmod kvm_rtdp puts new VMs on the C TDP MMU. 'exit' ends the guest.
	EOT
	setsid cttyhack sh -l </dev/console >/dev/console 2>&1
	result ok "shell"
	;;
*) result "not ok" "mode" "unknown rtdp.mode=$mode" ;;
esac
finish
