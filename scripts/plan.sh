# The test plan's grammar and make check's verdict rules, in one place for
# the guest's /init (busybox sh, which sources it as /lib/plan.sh) and for
# scripts/test-scripts.sh (which feeds them canned plans and logs).
#
# A plan (selftests/vm-tests.list) has entries, declarations and comments:
#   NAME COLUMNS TIMEOUT COMMAND...    an entry
#   @retry-on NAME EXIT TEXT...        a Rust first-run failure of NAME that
#                                      exited EXIT (137: killed at its
#                                      timeout) with TEXT in its log may be
#                                      retried
#   @may-skip NAME TEXT...             a skip of NAME in the Rust column is
#                                      a skip (not a failure) when its log
#                                      has TEXT
#   # ...                              a comment
# COLUMNS is "both" or "rust", then "@perf" (perf kernel only), then
# "+retry" (a second run where the first failed). Nothing else is taken.
#
# The rules:
# - An entry's first failure in the C column is retried when it has +retry.
#   In the Rust column only when, in addition, the C column's first run of
#   the same entry failed in this boot or the failure is one its @retry-on
#   names; the report says which.
# - A skip in a "rust" entry fails unless a @may-skip of it matches.
# - Each column gives exactly one result per entry it should run.
# - Every test passing on C passes on Rust.

# plan_check PLAN: prints "plan line N: PROBLEM: LINE" for each line that is
# not one of the above, and fails if there was one.
plan_check() {
	awk '
		function bad(why) { printf "plan line %d: %s: %s\n", NR, why, $0; n++ }
		/^[[:space:]]*(#|$)/ { next }
		$1 == "@retry-on" {
			if (NF < 4) bad("@retry-on needs NAME EXIT TEXT")
			else if ($3 !~ /^[0-9]+$/ || $3 == 0 || $3 == 4) bad("@retry-on: EXIT is a failing exit status")
			else { retry_on[$2] = NR }
			next
		}
		$1 == "@may-skip" {
			if (NF < 3) bad("@may-skip needs NAME TEXT")
			else may_skip[$2] = NR
			next
		}
		/^@/ { bad("unknown declaration"); next }
		{
			if (NF < 4) { bad("an entry is NAME COLUMNS TIMEOUT COMMAND"); next }
			if ($1 !~ /^[A-Za-z0-9_.-]+$/) bad("entry name")
			else if ($1 in cols) bad("entry " $1 " again (line " line[$1] ")")
			if ($2 !~ /^(both|rust)(@perf)?(\+retry)?$/) bad("columns \"" $2 "\" (both|rust, then @perf, then +retry)")
			if ($3 !~ /^[1-9][0-9]*$/) bad("timeout \"" $3 "\" (seconds)")
			cols[$1] = $2; line[$1] = NR
		}
		END {
			for (t in retry_on) {
				if (!(t in cols)) { printf "plan line %d: @retry-on of no entry %s\n", retry_on[t], t; n++ }
				else if (cols[t] !~ /\+retry$/) { printf "plan line %d: @retry-on of %s, an entry without +retry\n", retry_on[t], t; n++ }
			}
			for (t in may_skip) {
				if (!(t in cols)) { printf "plan line %d: @may-skip of no entry %s\n", may_skip[t], t; n++ }
				else if (cols[t] !~ /^rust/) { printf "plan line %d: @may-skip of %s, not a rust entry (a both entry skipping on Rust only fails anyway)\n", may_skip[t], t; n++ }
			}
			for (t in cols)
				if (cols[t] ~ /^rust.*\+retry$/ && !(t in retry_on)) {
					printf "plan line %d: %s: a rust entry with +retry needs a @retry-on\n", line[t], t; n++
				}
			exit n > 0
		}' "$1"
}

# plan_select PLAN COLUMN WHICH DEBUG: the entries COLUMN (c|rust) runs, one
# "NAME KIND RETRY TIMEOUT COMMAND..." line each (KIND both|rust, RETRY 0|1),
# in plan order. WHICH is "all"
# or "perf" (only @perf entries); DEBUG 1 leaves out @perf entries (the
# debug kernel's guest does not run them).
plan_select() {
	awk -v col="$2" -v which="$3" -v debug="$4" '
		/^[[:space:]]*(#|$|@)/ { next }
		{
			c = $2; perf = sub(/@perf/, "", c); retry = sub(/\+retry$/, "", c)
			if (which == "perf" && !perf) next
			if (perf && debug == 1) next
			if (c != "both" && col == "c") next
			s = $1 " " c " " retry " " $3
			for (i = 4; i <= NF; i++) s = s " " $i
			print s
		}' "$1"
}

# plan_text PLAN KIND NAME: the TEXT of NAME's @retry-on (KIND retry-on,
# "EXIT TEXT") or @may-skip (KIND may-skip, "TEXT"); empty if none.
plan_text() {
	awk -v k="@$2" -v t="$3" '$1 == k && $2 == t { $1 = ""; $2 = ""; sub(/^  /, ""); print; exit }' "$1"
}

# retry_reason PLAN FIRST-RUNS COLUMN NAME EXIT LOG: why a failed first run
# (EXIT, LOG) of NAME in COLUMN may run again; fails if it may not. Called
# only for +retry entries. FIRST-RUNS has a "NAME COLUMN EXIT" line for
# each first run of the boot so far.
retry_reason() {
	if [ "$3" = c ]; then
		echo "C column, +retry entry"
		return 0
	fi
	c_first=$(awk -v t="$4" '$1 == t && $2 == "c" { print $3; exit }' "$2")
	if [ -n "$c_first" ] && [ "$c_first" != 0 ] && [ "$c_first" != 4 ]; then
		echo "C's first run failed too (exit $c_first)"
		return 0
	fi
	sym=$(plan_text "$1" retry-on "$4")
	if [ -n "$sym" ] && [ "${sym%% *}" = "$5" ] && grep -qF -- "${sym#* }" "$6"; then
		echo "the symptom the plan names: exit $sym"
		return 0
	fi
	return 1
}

# skip_reason PLAN NAME LOG: why a skip of the rust entry NAME is a skip;
# fails when the plan declares none or its text is not in LOG.
skip_reason() {
	why=$(plan_text "$1" may-skip "$2")
	[ -n "$why" ] && grep -qF -- "$why" "$3" && echo "declared in the plan"
}

# column_missing PLAN COLUMNS COLUMN WHICH DEBUG: the entries COLUMN should
# have run (plan_select) without exactly one result in COLUMNS (lines
# "NAME COLUMN STATUS ..."), as "NAME(0)" or "NAME(2)"; empty when each has
# one.
column_missing() {
	plan_select "$1" "$3" "$4" "$5" | awk -v col="$3" '
		FNR == NR { if ($2 == col) n[$1]++; next }
		{ if (n[$1] != 1) printf "%s(%d) ", $1, n[$1] }
		' "$2" -
}

# columns_lost COLUMNS: the entries that passed on C and not on Rust.
columns_lost() {
	awk '$2 == "c" && $3 ~ /^ok/ { c[$1] = 1 } $2 == "rust" && $3 ~ /^ok/ { r[$1] = 1 }
		END { for (t in c) if (!(t in r)) printf "%s ", t }' "$1"
}
