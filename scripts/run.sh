#!/usr/bin/env bash
# run.sh: `make run`. Build what is missing, boot the patched kernel in QEMU,
# load kvm, kvm-amd and kvm_rtdp, run the rtdp_smoke KVM guest workload and
# print what happened. Exits with the guest's status.
source "$(dirname "$0")/common.sh"
out="$RTDP_CACHE/runs/run"
mkdir -p "$out"
t0=$SECONDS
bash "$RTDP_ROOT/scripts/guest-image.sh" "$out/initramfs.cpio.gz"
rc=0
bash "$RTDP_ROOT/scripts/vm.sh" run "$out/initramfs.cpio.gz" "$out" || rc=$?
log "guest status $rc after $((SECONDS - t0)) s; console log: $out/console.log"
exit $rc
