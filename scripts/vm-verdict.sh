#!/usr/bin/env bash
# vm-verdict.sh CONSOLE REPORT QEMU_STATUS LIMIT
#
# Decide how a guest run ended, from its console log, its report and QEMU's
# exit status (137: killed at the time limit). Exits with the guest's own
# status, or 1 when the guest hung, stopped without its rtdp-exit line (crash,
# panic) or the kernel logged an oops, BUG, WARNING or panic; then a
# `not ok guest` line is appended to REPORT and the console tail is printed.
set -uo pipefail
console=$1
report=$2
qrc=$3
limit=$4

status=$(sed -n 's/^rtdp-exit: \([0-9]*\).*/\1/p' "$report" | tail -n1)
problem=
if [ "$qrc" -eq 137 ]; then
	problem="guest hung: killed after ${limit}s"
elif [ -z "$status" ]; then
	problem="guest stopped without reporting (crash or panic; QEMU exit $qrc)"
fi
if grep -qE 'Oops|BUG:|WARNING:|Kernel panic|general protection fault' "$console"; then
	problem="${problem:+$problem; }kernel reported an oops, BUG or WARNING"
fi
if [ -n "$problem" ]; then
	echo "not ok guest # $problem" >>"$report"
	printf '[rtdp] %s; console tail:\n' "$problem" >&2
	tail -n 40 "$console" | sed 's/^/    /' >&2
	exit 1
fi
exit "$status"
