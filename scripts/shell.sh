#!/usr/bin/env bash
# shell.sh: `make shell`. Build what is missing, boot the test kernel in QEMU
# with kvm, kvm-amd and kvm_rtdp loaded and the selftests in /tests, and give
# an interactive shell on the console; exiting it ends QEMU. The debug kernel
# with RTDP_KERNEL_FLAVOUR=debug.
source "$(dirname "$0")/common.sh"
out="$RTDP_CACHE/runs/shell"
mkdir -p "$out"
bash "$RTDP_ROOT/scripts/guest-image.sh" "$out/initramfs.cpio.gz"
exec bash "$RTDP_ROOT/scripts/vm.sh" shell "$out/initramfs.cpio.gz" "$out"
