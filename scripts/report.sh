# shellcheck shell=bash
# Result collection for check.sh. Sourced.
#
# Steps append result lines to $RTDP_RESULTS in the harness's one format:
#   ok NAME [# detail] | not ok NAME [# detail] | skip NAME [# detail]
# and any '# ...' comment lines. report_ktap prints them as one KTAP document
# and the closing line `N passed, N failed, N skipped`.

record() { # record ok|"not ok"|skip NAME [DETAIL]
	local line="$1 $2"
	[ -n "${3:-}" ] && line="$line # $3"
	echo "$line" >>"$RTDP_RESULTS"
	echo "$line" >&2
}

report_ktap() {
	awk '
		/^#/ { body[n++] = $0; next }
		/^(ok|not ok|skip) / {
			t++
			line = $0
			if (line ~ /^not ok /) { st = "not ok"; sub(/^not ok /, "", line); failed++ }
			else if (line ~ /^skip /) { st = "skip"; sub(/^skip /, "", line); skipped++ }
			else { st = "ok"; sub(/^ok /, "", line); passed++ }
			name = line; detail = ""
			if (index(line, " # ")) {
				name = substr(line, 1, index(line, " # ") - 1)
				detail = substr(line, index(line, " # ") + 3)
			}
			if (st == "skip") {
				sub(/^SKIP ?/, "", detail)
				body[n++] = sprintf("ok %d %s # SKIP %s", t, name, detail)
			} else {
				body[n++] = sprintf("%s %d %s%s", st, t, name, detail != "" ? " # " detail : "")
			}
		}
		END {
			print "KTAP version 1"
			printf "1..%d\n", t
			for (i = 0; i < n; i++) print body[i]
			printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped
		}' "$RTDP_RESULTS"
}

# cargo_verdict LOG STATUS: empty when a `cargo test` run passed as a
# whole, else why not: its exit status, a harness that started ("running N
# tests") without its "test result: ok." line (aborted after some passes),
# or a failed harness.
cargo_verdict() {
	local log=$1 status=$2 started ended failed
	started=$(grep -cE '^running [0-9]+ tests?$' "$log" || true)
	ended=$(grep -cE '^test result: ok\.' "$log" || true)
	failed=$(grep -cE '^test result: FAILED' "$log" || true)
	if [ "$status" != 0 ]; then
		echo "cargo exit $status ($started harnesses started, $ended ok, $failed failed)"
	elif [ "$started" -eq 0 ] || [ "$ended" -ne "$started" ] || [ "$failed" -ne 0 ]; then
		echo "$started harnesses started, $ended ended ok, $failed failed"
	fi
}
