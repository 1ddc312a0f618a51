#!/usr/bin/env bash
# The rules that kvm_rtdp's types enforce, shown by code that breaks them:
# each case of rust/compile_fail.rs (a `#[cfg(rtdp_case_NAME)]` item whose doc
# comment ends with the expected error code, e.g. "(E0502).") is built into
# the module with --cfg rtdp_compile_fail --cfg rtdp_case_NAME and must
# fail with that code, at a line of rust/compile_fail.rs, and nowhere else.
# The normal build (make module) is the control: without a case it compiles.
#
# Prints one KTAP line per case: ok|not ok compile-fail NAME [# DETAIL].
# Objects go to their own directory in the cache; the real module's stay.
source "$(dirname "$0")/common.sh"
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
[ -f "$RTDP_BUILD/.rtdp-key" ] || die "no kernel build yet; run: make kernel"
src="$RTDP_ROOT/rust/compile_fail.rs"
mo="$RTDP_CACHE/module/compile-fail-$(basename "$RTDP_BUILD")"
mkdir -p "$mo"

# NAME CODE per case, in file order.
cases=$(awk '
	/^\/\/\// && match($0, /\(E[0-9][0-9][0-9][0-9]\)/) { code = substr($0, RSTART + 1, 5) }
	match($0, /^#\[cfg\(rtdp_case_[a-z_]+\)\]/) {
		name = $0; sub(/^#\[cfg\(rtdp_case_/, "", name); sub(/\).*/, "", name)
		print name, (code == "" ? "none" : code); code = ""
	}' "$src")
[ -n "$cases" ] || die "no cases in $src"

status=0
while read -r name code; do
	log="$mo/$name.log"
	if make -s -C "$RTDP_BUILD" M="$RTDP_ROOT" MO="$mo" "${RTDP_KMAKE_ARGS[@]}" \
		KRUSTFLAGS="--cfg rtdp_compile_fail --cfg rtdp_case_$name" \
		-j"$RTDP_JOBS" modules >"$log" 2>&1; then
		echo "not ok compile-fail $name # compiled: the rule is not enforced"
		status=1
		continue
	fi
	# Every error must be the expected one, at a line of the case's file
	# (its primary location, the first --> after it; notes may point to
	# the types it misuses).
	got=$(grep -oE '^error(\[E[0-9]{4}\])?' "$log" | sort -u | tr '\n' ' ')
	where=$(awk '/^error\[/ { e = 1; next } e && /^ *--> / { print; e = 0 }' "$log" |
		grep -v 'rust/compile_fail\.rs:' | head -1 || true)
	if [ "$got" != "error[$code] " ] && [ "$got" != "error error[$code] " ]; then
		echo "not ok compile-fail $name # want error[$code], got: ${got:-none} (see $log)"
		status=1
	elif [ -n "$where" ]; then
		echo "not ok compile-fail $name # an error outside compile_fail.rs:$where"
		status=1
	else
		echo "ok compile-fail $name # error[$code]"
	fi
done <<<"$cases"
exit $status
