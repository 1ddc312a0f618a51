#!/usr/bin/env bash
# Clippy over kvm_rtdp, as the kernel runs it (CLIPPY=1: clippy-driver with
# the kernel's lints and .clippy.toml), with Debian's clippy of the same
# version as rustc-web (rustup's, first on PATH, is another version and
# rejects the kernel's -Z flags). Objects go to their own directory.
#
# Prints one KTAP line: ok|not ok clippy [# first warning].
source "$(dirname "$0")/common.sh"
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
[ -f "$RTDP_BUILD/.rtdp-key" ] || die "no kernel build yet; run: make kernel"
mo="$RTDP_CACHE/module/clippy-$(basename "$RTDP_BUILD")"
mkdir -p "$mo"
log="$mo/clippy.log"
# Every file is linted again: clippy's findings are not cached with the
# objects.
rm -f "$mo/rust/kvm_rtdp.o"
if ! make -s -C "$RTDP_BUILD" M="$RTDP_ROOT" MO="$mo" "${RTDP_KMAKE_ARGS[@]}" \
	CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver -j"$RTDP_JOBS" modules >"$log" 2>&1; then
	echo "not ok clippy # build failed: $(grep -m1 -E '^error' "$log") (see $log)"
	exit 1
fi
n=$(grep -cE '^(warning|error)' "$log" || true)
if [ "$n" != 0 ]; then
	first=$(grep -m1 -A1 -E '^(warning|error)' "$log" | tr -s ' \n' ' ')
	echo "not ok clippy # $n findings, first: $first(see $log)"
	exit 1
fi
echo "ok clippy # no findings"
