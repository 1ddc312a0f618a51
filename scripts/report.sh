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
