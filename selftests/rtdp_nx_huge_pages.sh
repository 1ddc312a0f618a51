#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run upstream's x86/nx_huge_pages_test ($1) as its own wrapper
# (x86/nx_huge_pages_test.sh) does, as root: NX huge pages on, recovery of
# one page in every 100 ms, three more 2 MiB hugetlb pages (rtdp_hugetlb.sh).
# The settings are restored afterwards. Exits 4 (skip) if they cannot be
# made.
#
# The test checks, through the VM's binary stats, that executing from a huge
# page splits it, that the split page goes on the possible-NX-huge-page list
# (nx_lpage_splits), and that recovery zaps it so a huge page comes back.

test=$1
p=/sys/module/kvm/parameters

nx=$(cat $p/nx_huge_pages) || exit 4
ratio=$(cat $p/nx_huge_pages_recovery_ratio) || exit 4
period=$(cat $p/nx_huge_pages_recovery_period_ms) || exit 4

restore() {
	echo "$nx" >$p/nx_huge_pages
	echo "$ratio" >$p/nx_huge_pages_recovery_ratio
	echo "$period" >$p/nx_huge_pages_recovery_period_ms
}

if ! { echo 1 >$p/nx_huge_pages && echo 1 >$p/nx_huge_pages_recovery_ratio &&
	echo 100 >$p/nx_huge_pages_recovery_period_ms; }; then
	restore
	echo "SKIP: cannot set up NX huge pages"
	exit 4
fi

"$(dirname "$0")/rtdp_hugetlb.sh" 3 "$test" -t 887563923 -p 100 -r
rc=$?
restore
exit $rc
