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
# What the kernel and its checkers print when they find something. Most
# reports start with one of the first group (KASAN and KFENCE: "BUG: KASAN:",
# lockdep and RCU lockdep: "WARNING: ...", sleeping in atomic context: "BUG:
# sleeping function", DEBUG_LIST and debug objects: WARN); the rest have
# their own form.
reports=(
	'Oops' 'BUG:' 'WARNING:' 'Kernel panic' 'general protection fault'
	# SLUB consistency checks: "BUG kmalloc-64 (Not tainted): Poison overwritten"
	'BUG [^ ]+ \((Not t|T)ainted[^)]*\)'
	'UBSAN:'
	# explicit kmemleak scans log "kmemleak: 2 new suspected memory leaks"
	'kmemleak: [0-9]+ new suspected memory leak'
	'rcu: INFO: .*detected stalls?'
	'suspicious RCU usage'
	'ODEBUG:'
	'list_(add|del) corruption'
	'INFO: task .* blocked for more than'
	# lockdep gives up after its first report or when its tables fill up
	'turning off the locking correctness validator'
)
pattern=$(IFS='|'; echo "${reports[*]}")
if first=$(grep -m1 -E "$pattern" "$console"); then
	problem="${problem:+$problem; }kernel reported a problem: ${first:0:160}"
fi
if [ -n "$problem" ]; then
	echo "not ok guest # $problem" >>"$report"
	printf '[rtdp] %s; console tail:\n' "$problem" >&2
	tail -n 40 "$console" | sed 's/^/    /' >&2
	exit 1
fi
exit "$status"
