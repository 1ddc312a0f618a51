# shellcheck shell=bash
# host-steps.sh: sourced by check.sh (and tested by test-scripts.sh).
#
# Needs: host_cache (a directory), out (this run's directory), want_tests
# (T=), RTDP_RESULTS and record() (report.sh).
#
# `make check T=...` is the quick loop: a host step whose inputs are those
# of an earlier run in which it passed replays that run's results, and says
# so; a full `make check` runs every step.
inputs_key() { # inputs_key PATH...: a hash of the files under PATH... and the toolchain
	{
		find "$@" -type f -not -path '*/target/*' -print0 | sort -z | xargs -0 sha256sum
		/usr/bin/rustc --version
		cargo --version 2>/dev/null || true
	} | sha256sum | cut -c1-16
}
host_step() { # host_step NAME KEY FUNCTION: FUNCTION records its results, or a replay
	local name=$1 key=$2 fn=$3 saved step_out rc
	saved="$host_cache/$name-$key.results"
	if [ -n "$want_tests" ] && [ -f "$saved" ]; then
		echo "# host $name: inputs as in the run of $(date -r "$saved" '+%F %T'), where it passed; its results (T= only)" >>"$RTDP_RESULTS"
		cat "$saved" >>"$RTDP_RESULTS"
		return
	fi
	step_out="$out/$name.results"
	(RTDP_RESULTS=$step_out && : >"$step_out" && "$fn")
	rc=$?
	cat "$step_out" >>"$RTDP_RESULTS"
	if [ $rc -eq 0 ] && ! grep -q '^not ok' "$step_out"; then
		mkdir -p "$host_cache"
		rm -f "$host_cache/$name-"*.results
		cp "$step_out" "$saved.tmp" && mv "$saved.tmp" "$saved"
	fi
}

