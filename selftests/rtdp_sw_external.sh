#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# rtdp_sw_external.sh BUSY_EVERY FAIL_EVERY MIN_CHANGES TEST [ARGS...]: run a selftest
# with kvm_rtdp_sw_external loaded, the software external page table that
# software-protected VMs bound to kvm_rtdp mirror their private leaves to,
# refusing every BUSY_EVERY-th install as busy and every FAIL_EVERY-th as
# failed (0: never). After the test, every VM of it destroyed: the table
# saw no change that did not start from the value the last one left, kept
# no leaf of a destroyed VM, and took at least MIN_CHANGES changes (for a
# test that maps private memory: else this wrapper tested nothing). While
# the test runs, the table is compared with the mirror every 0.1 s by the
# module's in-kernel check (kvm_rtdp_sw_external/check): no difference and
# no frozen SPTE may be found.

d=/sys/kernel/debug/kvm_rtdp_sw_external
busy=$1 fail=$2 min=$3
shift 3
[ -d $d ] && rmmod kvm_rtdp_sw_external
insmod /lib/modules/kvm_rtdp_sw_external.ko busy_every="$busy" fail_every="$fail" || exit 1
(while :; do cat $d/check >/dev/null; sleep 0.1; done) &
checker=$!
"$@"
rc=$?
kill $checker
wait $checker 2>/dev/null
stat() { awk -v k="$1" '$1 == k { print $2 }' $d/stats; }
# The test's VMs are destroyed once their last file is closed: rmmod
# succeeds then (each holds a reference to the module).
i=0
while [ "$(cat /sys/module/kvm_rtdp_sw_external/refcnt)" != 0 ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "rtdp-report: kvm_rtdp_sw_external: changes $(stat changes) busy $(stat busy) failed $(stat failed) violations $(stat violations) leaked $(stat leaked); $(stat checks) checks of the VMs, $(stat check_differences) differences"
if [ "$(stat violations)" != 0 ] || [ "$(stat leaked)" != 0 ] || [ "$(stat check_differences)" != 0 ]; then
	echo "external page table out of step with the mirror"
	rc=1
fi
if [ "$(stat changes)" -lt "$min" ]; then
	echo "fewer than $min changes reached the external page table"
	rc=1
fi
rmmod kvm_rtdp_sw_external || rc=1
exit $rc
