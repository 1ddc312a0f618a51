#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# rtdp_hugetlb.sh PAGES TEST [ARGS...]: run an upstream selftest that backs
# guest memory with 2 MiB hugetlb pages, with PAGES more of them reserved
# for it (as root); the reservation is undone afterwards. Exits 4 (skip) if
# the pages cannot be reserved.

n=$1
shift
h=/proc/sys/vm/nr_hugepages
before=$(cat $h) || exit 4
if ! echo $((before + n)) >$h || [ "$(cat $h)" -lt $((before + n)) ]; then
	echo "$before" >$h
	echo "SKIP: cannot reserve $n hugetlb pages"
	exit 4
fi
"$@"
rc=$?
echo "$before" >$h
exit $rc
