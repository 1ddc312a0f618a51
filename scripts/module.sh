#!/usr/bin/env bash
# Build kvm_rtdp.ko against the cached kernel. Objects go to the cache (MO=),
# never into the checkout. Prints the path of the .ko on stdout.
source "$(dirname "$0")/common.sh"
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
[ -f "$RTDP_BUILD/.rtdp-key" ] || die "no kernel build yet; run: make kernel"
mo="$RTDP_CACHE/module/$(basename "$RTDP_BUILD")"
mkdir -p "$mo"
make -s -C "$RTDP_BUILD" M="$RTDP_ROOT" MO="$mo" "${RTDP_KMAKE_ARGS[@]}" \
	-j"$RTDP_JOBS" modules >&2 || die "kvm_rtdp build failed"
[ -f "$mo/rust/kvm_rtdp.ko" ] || die "kvm_rtdp.ko missing after build"
echo "$mo/rust/kvm_rtdp.ko"
