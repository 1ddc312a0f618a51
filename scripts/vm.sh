#!/usr/bin/env bash
# vm.sh run|check|bench|profile|shell INITRAMFS OUTDIR
#
# Boot the cached kernel in QEMU (TCG, -cpu max: SVM with NPT) with INITRAMFS,
# stream the guest's report (ttyS1) and write OUTDIR/{console,report}.log.
# Exit status: the guest's (its rtdp-exit line); 1 as well when the guest
# crashed, hung past the time limit, or the kernel logged an oops, BUG or
# WARNING (the console tail is printed then).
source "$(dirname "$0")/common.sh"
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
mode=$1
initrd=$2
outdir=$3

# The debug kernel (RTDP_KERNEL_FLAVOUR=debug) needs room for KASAN's shadow
# (1/8 of RAM) and kmemleak's metadata, and time: its tests' timeouts are
# multiplied by RTDP_VM_TSCALE.
if [ "$RTDP_FLAVOUR" = debug ]; then
	RTDP_VM_MEM=${RTDP_VM_MEM:-6G}
	RTDP_VM_TSCALE=${RTDP_VM_TSCALE:-3}
fi
RTDP_VM_MEM=${RTDP_VM_MEM:-4G}
RTDP_VM_CPUS=${RTDP_VM_CPUS:-2}
RTDP_VM_TSCALE=${RTDP_VM_TSCALE:-1}
# Whole-VM limit: the per-test timeouts of the plan, per column, plus boot
# and slack.
limit=$(awk -v s="$RTDP_VM_TSCALE" '!/^[[:space:]]*(#|$|@)/ { t += $3 * ($2 ~ /^both/ ? 2 : 1) }
	END { print t * s + 180 * s }' <(rtdp_plan))
# Capped at RTDP_VM_MAX (default 1 h; the debug guest ran the plan
# in 795 s), so that a hung guest ends well inside CI's 90 minutes.
RTDP_VM_MAX=${RTDP_VM_MAX:-3600}
[ "$limit" -le "$RTDP_VM_MAX" ] || limit=$RTDP_VM_MAX
# The benchmark runs under -icount by default: guest time follows the
# instruction count, so the host's load does not move the numbers. icount
# needs one TCG thread, and the guest gets one vCPU there: with two, the
# selftests' spin-waits on another vCPU thread take round-robin turns and
# dirty_log_perf_test did not finish in 300 s of guest time.
# RTDP_BENCH_ICOUNT=none runs multi-threaded TCG with RTDP_VM_CPUS vCPUs.
accel=(-accel tcg,thread=multi)
append=" rtdp.tscale=$RTDP_VM_TSCALE"
if [ "$mode" = bench ]; then
	reps=${RTDP_BENCH_REPS:-3}
	limit=$(awk -v r="$reps" '!/^[[:space:]]*(#|$)/ { t += 2 * $2 } END { print t * r + 300 }' \
		"$RTDP_ROOT/selftests/bench.list")
	icount=${RTDP_BENCH_ICOUNT:-shift=3,sleep=off}
	if [ "$icount" != none ]; then
		accel=(-accel tcg,thread=single -icount "$icount")
		RTDP_VM_CPUS=1
	fi
	append+=" rtdp.reps=$reps"
fi
# `make profile`: the same deterministic clock as the benchmark, and the
# insn-count plugin (built by scripts/profile.sh) writing its snapshots to
# OUTDIR/counts.
if [ "$mode" = profile ]; then
	limit=$((2 * RTDP_PROFILE_TIMEOUT + 300))
	accel=(-accel tcg,thread=single -icount shift=3,sleep=off
		-plugin "$RTDP_PROFILE_PLUGIN,out=$outdir/counts")
	RTDP_VM_CPUS=1
	append+=" rtdp.profile=$RTDP_PROFILE_NAME"
fi

# `make shell`: the console is the terminal (or whatever stdin is), and the
# guest lives until its shell exits.
if [ "$mode" = shell ]; then
	mkdir -p "$outdir"
	log "booting the $RTDP_FLAVOUR kernel (shell, $RTDP_VM_CPUS vCPUs, $RTDP_VM_MEM): exit the shell to stop"
	exec qemu-system-x86_64 \
		"${accel[@]}" -cpu max -smp "$RTDP_VM_CPUS" -m "$RTDP_VM_MEM" \
		-display none -monitor none -no-reboot \
		-serial stdio -serial "file:$outdir/report.log" \
		-kernel "$RTDP_BUILD/arch/x86/boot/bzImage" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 rtdp.mode=shell$append"
fi

mkdir -p "$outdir"
console="$outdir/console.log"
report="$outdir/report.log"
: >"$console"
: >"$report"

log "booting the $RTDP_FLAVOUR kernel (mode $mode, $RTDP_VM_CPUS vCPUs, $RTDP_VM_MEM, limit ${limit}s)"
timeout -s KILL "$limit" qemu-system-x86_64 \
	"${accel[@]}" -cpu max -smp "$RTDP_VM_CPUS" -m "$RTDP_VM_MEM" \
	-display none -monitor none -no-reboot \
	-serial "file:$console" -serial "file:$report" \
	-kernel "$RTDP_BUILD/arch/x86/boot/bzImage" -initrd "$initrd" \
	-append "console=ttyS0 oops=panic panic=-1 rtdp.mode=$mode$append" &
qpid=$!
tail -n +1 -f --pid=$qpid "$report" 2>/dev/null | grep -v '^rtdp-exit:' >&2 || true
qrc=0
wait $qpid || qrc=$?

bash "$RTDP_ROOT/scripts/vm-verdict.sh" "$console" "$report" "$qrc" "$limit"
