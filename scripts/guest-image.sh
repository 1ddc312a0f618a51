#!/usr/bin/env bash
# guest-image.sh OUT: build what is missing (kernel, kvm_rtdp, selftests) and
# pack the test guest's initramfs at OUT. Shared by `make run` and
# `make bench`.
source "$(dirname "$0")/common.sh"
bash "$RTDP_ROOT/scripts/kernel.sh" build
ko=$(bash "$RTDP_ROOT/scripts/module.sh")
bash "$RTDP_ROOT/scripts/kernel.sh" selftests
bash "$RTDP_ROOT/scripts/initramfs.sh" "$1" "$ko"
