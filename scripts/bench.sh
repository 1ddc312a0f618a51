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
# Numbers come from the kernel distributions build (scripts/kernel.config),
# never from the debug one.
export RTDP_KERNEL_FLAVOUR=perf
out="$RTDP_CACHE/runs/bench"
mkdir -p "$out"
t0=$SECONDS
bash "$RTDP_ROOT/scripts/guest-image.sh" "$out/initramfs.cpio.gz"
rc=0
bash "$RTDP_ROOT/scripts/vm.sh" bench "$out/initramfs.cpio.gz" "$out" 2>"$out/guest.log" || rc=$?
csv="$out/bench.csv"
rm -f "$out/scaling.txt"
awk -v csv="$csv" -v plot="$out/ratios.dat" -v scale="$out/scaling.txt" \
	-f "$RTDP_ROOT/scripts/bench-report.awk" "$out/report.log" | tee "$out/table.txt"
# How populate grows with the VM's memory (entries populate_<N>M).
[ -s "$out/scaling.txt" ] && tee -a "$out/table.txt" <"$out/scaling.txt"
# The ratios as a picture: one bar per measurable phase, 1.0 marked.
png="$out/ratios.png"
if [ -s "$out/ratios.dat" ]; then
	gnuplot <<-EOF || log "gnuplot failed; no picture"
		set terminal pngcairo noenhanced size 1100,$((200 + 28 * $(wc -l <"$out/ratios.dat")))
		set output "$png"
		set title "kvm_rtdp / C TDP MMU: guest instructions per phase (below 1: Rust cheaper)"
		set style fill solid 0.6
		set yrange [*:*] reverse
		set xrange [0:$(awk '$NF > m { m = $NF } END { print (m > 1 ? m : 1) * 1.15 }' "$out/ratios.dat")]
		set ytics nomirror
		set grid xtics
		set xlabel "Rust/C (median of the repetitions)"
		set arrow from 1, graph 0 to 1, graph 1 nohead lw 2 lc rgb "black"
		plot "$out/ratios.dat" using (\$2 / 2):0:(\$2 / 2):(0.35):yticlabels(1) with boxxyerror notitle lc rgb "#4477aa", \
			"" using 2:0:(sprintf("%.2f", \$2)) with labels left offset 0.5,0 notitle
	EOF
fi
grep -E '^(not ok|# bench)' "$out/report.log" >&2 || true
# The kernel the numbers were taken on: how it was compiled, and what the
# guest enabled against CPU vulnerabilities (only those not "Not affected").
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
{
	printf 'kernel: %s\n' "$(grep -E '^CONFIG_(CC_OPTIMIZE_FOR_[A-Z]+|RUST_OVERFLOW_CHECKS|CPU_MITIGATIONS|MITIGATION_RETPOLINE|MITIGATION_RETHUNK)=' "$RTDP_BUILD/.config" | tr '\n' ' ')"
	sed -n 's/^# mitigation \([^:]*\): \(.*\)/\1: \2/p' "$out/report.log" | tr -d '\r' | grep -v '^[^:]*: Not affected$' | sed 's/^/mitigation /'
} | tee "$out/kernel.txt"
log "bench: $((SECONDS - t0)) s; CSV: $csv; table: $out/table.txt; picture: $png; guest: $out/report.log"
exit $rc
