#!/usr/bin/env bash
# The rules that kvm_rtdp's types enforce, shown by code that breaks them.
# Each case NAME of rust/compile_fail.rs (the item under
# `#[cfg(any(rtdp_case_NAME, rtdp_twin_NAME))]`) carries one
# `//~ ERROR CODE fragment` comment; built into the module with
# --cfg rtdp_compile_fail --cfg rtdp_case_NAME it must fail, every error
# being that CODE at that comment's line of rust/compile_fail.rs, one of
# them with the fragment in its message or labels. Then every case's twin (the lines
# marked #[cfg(not(rtdp_twin_NAME))] left out) is built in one module build
# with every --cfg rtdp_twin_NAME, which must succeed: each case fails for
# its misuse and for nothing else.
#
# Prints one KTAP line per case and one for the twins:
#   ok|not ok compile-fail NAME [# DETAIL]
#   ok|not ok compile-fail twins compile [# DETAIL]
# With --list, prints the parsed cases (NAME LINE CODE FRAGMENT) and exits.
# Objects go to their own directory in the cache; the real module's stay.
source "$(dirname "$0")/common.sh"
src=${RTDP_COMPILE_FAIL_SRC:-$RTDP_ROOT/rust/compile_fail.rs}

# NAME LINE CODE FRAGMENT per case, in file order; a case without exactly
# one marker, or without a line its twin leaves out, is reported as BAD.
parse_cases() {
	awk '
	function flush() {
		if (name == "") return
		if (markers != 1) print name, 0, "BAD", markers " //~ ERROR markers"
		else if (!twin) print name, 0, "BAD", "no #[cfg(not(rtdp_twin_" name "))] line"
		else print name, line, code, frag
	}
	match($0, /^#\[cfg\(any\(rtdp_case_[a-z_]+, rtdp_twin_[a-z_]+\)\)\]/) {
		n = $0; sub(/^#\[cfg\(any\(rtdp_case_/, "", n); sub(/,.*/, "", n)
		if (n == name) next
		flush(); name = n; markers = 0; twin = 0; next
	}
	name != "" && index($0, "#[cfg(not(rtdp_twin_" name "))]") { twin = 1 }
	name != "" && match($0, /\/\/~ ERROR E[0-9][0-9][0-9][0-9] .+/) {
		markers++; line = NR
		m = substr($0, RSTART + 10); code = substr(m, 1, 5); frag = substr(m, 7)
	}
	END { flush() }' "$1"
}

cases=$(parse_cases "$src")
if [ "${1:-}" = --list ]; then
	echo "$cases"
	exit 0
fi
[ -n "$cases" ] || die "no cases in $src"

eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
[ -f "$RTDP_BUILD/.rtdp-key" ] || die "no kernel build yet; run: make kernel"
mo="$RTDP_CACHE/module/compile-fail-$(basename "$RTDP_BUILD")"
mkdir -p "$mo"
build() { # build LOG CFG...: the module with --cfg rtdp_compile_fail CFG...
	local log=$1 flags="--cfg rtdp_compile_fail"
	shift
	for c in "$@"; do flags+=" --cfg $c"; done
	make -s -C "$RTDP_BUILD" M="$RTDP_ROOT" MO="$mo" "${RTDP_KMAKE_ARGS[@]}" \
		KRUSTFLAGS="$flags" -j"$RTDP_JOBS" modules >"$log" 2>&1
}

# check_log LOG LINE CODE FRAGMENT: empty when every error of the log is
# error[CODE] at compile_fail.rs:LINE and one of them has FRAGMENT in its
# message or labels, else what is wrong.
check_log() {
	local log=$1 line=$2 code=$3 frag=$4 got where
	got=$(grep -oE '^error\[E[0-9]{4}\]' "$log" | sort | uniq -c | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')
	case "$got" in
	"error[$code] x"[0-9]*) ;;
	*) echo "want error[$code] only, got: ${got:-none}"; return ;;
	esac
	case "$got" in *,*) echo "want error[$code] only, got: $got"; return ;; esac
	# The diagnostics: each from its header to the next one, with the
	# primary location of each.
	awk '/^error\[/ { on = 1; print; next } on && /^(error|warning)/ { on = 0 } on { print }' \
		"$log" >"$log.diag"
	where=$(awk '/^error\[/ { e = 1; next } e && /^ *--> / { print $2; e = 0 }' "$log.diag" |
		grep -v "compile_fail\.rs:$line:" | head -1)
	if [ -n "$where" ]; then
		echo "error[$code] at $where, want compile_fail.rs:$line"
		return
	fi
	grep -qF -- "$frag" "$log.diag" || echo "error[$code] at line $line without \"$frag\" (see $log.diag)"
}

status=0
twins=()
while read -r name line code frag; do
	if [ "$code" = BAD ]; then
		echo "not ok compile-fail $name # malformed case: $frag"
		status=1
		continue
	fi
	twins+=("rtdp_twin_$name")
	log="$mo/$name.log"
	if build "$log" "rtdp_case_$name"; then
		echo "not ok compile-fail $name # compiled: the rule is not enforced"
		status=1
		continue
	fi
	problem=$(check_log "$log" "$line" "$code" "$frag")
	if [ -n "$problem" ]; then
		echo "not ok compile-fail $name # $problem"
		status=1
	else
		echo "ok compile-fail $name # error[$code] at line $line: $frag"
	fi
done <<<"$cases"

log="$mo/twins.log"
if build "$log" "${twins[@]}"; then
	echo "ok compile-fail twins compile # ${#twins[@]} cases with their misuse taken out"
else
	echo "not ok compile-fail twins compile # $(grep -m1 -E '^error' "$log") (see $log)"
	status=1
fi
exit $status
