#!/usr/bin/env bash
# profile.sh [NAME]: `make profile`. One entry of selftests/profile.list
# (default: the first) runs on the C TDP MMU and then on kvm_rtdp in one
# boot under QEMU -icount with the insn-count TCG plugin; prints the guest
# instructions per function in each column, divided by the entry's
# operation count, and writes them all as CSV.
#
#   RTDP_PROFILE_TOP   rows shown (default 30)
source "$(dirname "$0")/common.sh"
# Numbers come from the kernel distributions build (scripts/kernel.config),
# never from the debug one.
export RTDP_KERNEL_FLAVOUR=perf
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
list="$RTDP_ROOT/selftests/profile.list"
name=${1:-$(awk '!/^[[:space:]]*(#|$)/ { print $1; exit }' "$list")}
read -r _ ops unit timeout _ < <(awk -v n="$name" '$1 == n' "$list") ||
	die "no entry '$name' in selftests/profile.list (entries: $(awk '!/^[[:space:]]*(#|$)/ { printf "%s ", $1 }' "$list"))"
out="$RTDP_CACHE/runs/profile/$name"
mkdir -p "$out"
t0=$SECONDS

plugin="$RTDP_CACHE/tools/insn-count.so"
src="$RTDP_ROOT/scripts/profile/insn-count.c"
if [ ! -f "$plugin" ] || [ "$src" -nt "$plugin" ]; then
	mkdir -p "$(dirname "$plugin")"
	gcc -O2 -shared -fPIC -Wall -Wextra -Werror -Wno-unused-parameter -o "$plugin" "$src" ||
		die "building the insn-count plugin failed"
fi

bash "$RTDP_ROOT/scripts/guest-image.sh" "$out/initramfs.cpio.gz"
rc=0
RTDP_PROFILE_PLUGIN=$plugin RTDP_PROFILE_NAME=$name RTDP_PROFILE_TIMEOUT=$timeout \
	bash "$RTDP_ROOT/scripts/vm.sh" profile "$out/initramfs.cpio.gz" "$out" 2>"$out/guest.log" || rc=$?
grep -E '^(ok|not ok)' "$out/report.log" >&2 || true
[ "$rc" -eq 0 ] || die "the profile run failed (guest log: $out/guest.log, console: $out/console.log)"
[ "$(grep -c '^snapshot' "$out/counts")" -eq 4 ] ||
	die "expected 4 snapshots in $out/counts, found $(grep -c '^snapshot' "$out/counts")"

# Rust symbols are v0-mangled: demangled, without the crate hashes.
demangle() { llvm-cxxfilt-19 | sed -E 's/\[[0-9a-f]{16}\]//g'; }
{
	{
		llvm-nm-19 --defined-only -n "$RTDP_BUILD/vmlinux" |
			awk '$2 ~ /^[tTwW]$/ { printf "%s\tS\tvmlinux\t%s\n", $1, $3 }'
		# The console ends its lines with CR LF.
		tr -d '\r' <"$out/report.log" |
			awk '$1 == "profile-ksym" { printf "%s\tS\t%s\t%s\n", $2, $4, $3 }'
	} | demangle
	# Per block: instructions in the C window (snapshots 0-1) and the Rust
	# window (2-3).
	awk '$1 == "snapshot" { s = $2; next }
		{ v[s, $1] += $2 * $3; seen[$1] = 1 }
		END { for (a in seen) {
			c = v[1, a] - v[0, a]; r = v[3, a] - v[2, a]
			if (c || r) printf "%s\tT\t%.0f\t%.0f\n", a, c, r } }' "$out/counts"
} | LC_ALL=C sort -t "$(printf '\t')" -k1,1 -k2,2 |
	awk -F '\t' -v ops="$ops" -v unit="$unit" -v top="${RTDP_PROFILE_TOP:-30}" -v csv="$out/profile.csv" \
		-f "$RTDP_ROOT/scripts/profile/report.awk" | tee "$out/table.txt"
log "profile $name: $ops ${unit}s per column; $((SECONDS - t0)) s; CSV: $out/profile.csv; table: $out/table.txt"
