#!/usr/bin/env bash
# bench.sh: `make bench`. The C TDP MMU against kvm_rtdp in one boot, on the
# upstream KVM selftests of selftests/bench.list, entries alternating
# between the columns. Prints a table of the median and
# spread of every phase per column and the Rust/C ratio, and writes the raw
# numbers as CSV. A benchmark, not a test: no timing is asserted.
#
#   RTDP_BENCH_REPS     repetitions of each entry per column (default 3)
#   RTDP_BENCH_ICOUNT   QEMU -icount setting (default shift=3,sleep=off: one
#                       TCG thread, one vCPU, guest time follows the
#                       instruction count); "none": multi-threaded TCG, guest
#                       time is host time
source "$(dirname "$0")/common.sh"
out="$RTDP_CACHE/runs/bench"
mkdir -p "$out"
t0=$SECONDS
bash "$RTDP_ROOT/scripts/guest-image.sh" "$out/initramfs.cpio.gz"
rc=0
bash "$RTDP_ROOT/scripts/vm.sh" bench "$out/initramfs.cpio.gz" "$out" 2>"$out/guest.log" || rc=$?
csv="$out/bench.csv"
echo "benchmark,phase,column,rep,seconds" >"$csv"
awk -v csv="$csv" -f "$RTDP_ROOT/scripts/bench-report.awk" "$out/report.log" | tee "$out/table.txt"
grep -E '^(not ok|# bench)' "$out/report.log" >&2 || true
log "bench: $((SECONDS - t0)) s; CSV: $csv; table: $out/table.txt; guest: $out/report.log"
exit $rc
