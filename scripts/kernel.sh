#!/usr/bin/env bash
# kernel.sh {build|selftests|env|key}
#
#   build      pristine source -> work tree with patches/ applied -> .config from
#              tinyconfig + scripts/kernel.config (+ scripts/kernel-debug.config
#              for the debug flavour) -> bzImage, modules, headers.
#   selftests  upstream KVM selftests and ours (selftests/), statically linked.
#   env        print the cache paths as shell assignments.
#   key        print the cache key of the kernel build.
#   options    print the CONFIG_ lines the fragments ask for (last one wins).
#
# The kernel is cached under $RTDP_CACHE, keyed by the Debian source version,
# the patch series, the config fragment and the Rust toolchain. A matching key
# skips make entirely; a different key re-applies the series (only changed files
# get new mtimes) and rebuilds incrementally in the same build directory.
#
# RTDP_KERNEL_FLAVOUR picks the kernel: perf (default; `make run`, `make
# bench`) or debug (lockdep, KASAN, kmemleak, fault injection; `make check`).
# Each has its own build directory, cache key and CONFIG_LOCALVERSION; the
# patched source tree and the selftest binaries are shared.
source "$(dirname "$0")/common.sh"

kver=$RTDP_KERNEL_DEB_VERSION
flavour=${RTDP_KERNEL_FLAVOUR:-perf}
work="$RTDP_CACHE/work/linux-$kver"
stout="$RTDP_CACHE/selftests/linux-$kver"
frags=("$RTDP_ROOT/scripts/kernel.config")
case "$flavour" in
perf) build="$RTDP_CACHE/build/linux-$kver" ;;
debug)
	build="$RTDP_CACHE/build/linux-$kver-debug"
	frags+=("$RTDP_ROOT/scripts/kernel-debug.config")
	;;
*) die "RTDP_KERNEL_FLAVOUR=$flavour: want perf or debug" ;;
esac
kmake=(make -C "$work" O="$build" "${RTDP_KMAKE_ARGS[@]}")

series_files() {
	echo "$RTDP_ROOT/patches/series"
	sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$RTDP_ROOT/patches/series" |
		sed "s|^|$RTDP_ROOT/patches/|"
}

cache_key() {
	{
		echo "$RTDP_KERNEL_DEB $kver"
		/usr/bin/rustc --version
		clang-19 --version | head -n1
		cat "${frags[@]}"
		series_files | xargs cat
	} | sha256sum | cut -c1-16
}

# The options the fragments ask for, one line each; a later fragment's
# value wins, as in merge_config.sh.
wanted_options() {
	cat "${frags[@]}" | awk '/^CONFIG_[A-Za-z0-9_]+=/ {
		opt = $0; sub(/=.*/, "", opt)
		if (!(opt in v)) order[n++] = opt
		v[opt] = $0
	}
	END { for (i = 0; i < n; i++) print v[order[i]] }'
}

# Fail loudly when a fragment option did not survive olddefconfig, which
# otherwise drops unmet options silently (CONFIG_RUST above all).
check_config() {
	local bad=() opt val want line
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) ;; *) continue ;; esac
		opt=${line%%=*}
		want=${line#*=}
		val=$(sed -n "s/^$opt=//p" "$build/.config")
		if [ "$want" = n ]; then
			[ -z "$val" ] || bad+=("$opt: want n, have $val")
		elif [ "$val" != "$want" ]; then
			bad+=("$opt: want $want, have ${val:-unset}")
		fi
	done < <(wanted_options)
	if [ ${#bad[@]} -gt 0 ]; then
		printf '[rtdp]   %s\n' "${bad[@]}" >&2
		if printf '%s\n' "${bad[@]}" | grep -q '^CONFIG_RUST:'; then
			"${kmake[@]}" rustavailable >&2 || true
		fi
		die "the config fragments were not honoured (above): ${frags[*]#"$RTDP_ROOT"/}"
	fi
}

do_build() {
	bash "$RTDP_ROOT/scripts/deps.sh"
	local pristine key
	pristine=$(bash "$RTDP_ROOT/scripts/fetch-kernel.sh")
	key=$(cache_key)
	if [ "$(cat "$build/.rtdp-key" 2>/dev/null)" = "$key" ] &&
		[ -f "$build/arch/x86/boot/bzImage" ]; then
		log "$flavour kernel $kver cached (key $key)"
		return 0
	fi

	if [ ! -f "$work/.rtdp-work" ]; then
		log "creating work tree from pristine source (once)"
		rm -rf "$work.tmp"
		mkdir -p "$(dirname "$work")"
		cp -a "$pristine" "$work.tmp"
		touch "$work.tmp/.rtdp-work"
		rm -f "$work.tmp/.rtdp-pristine"
		mv "$work.tmp" "$work"
	fi
	bash "$RTDP_ROOT/scripts/apply-series.sh" "$pristine" "$work" "$RTDP_ROOT/patches"

	mkdir -p "$build"
	local cfgkey
	cfgkey=$( (cat "${frags[@]}"; /usr/bin/rustc --version) | sha256sum | cut -c1-16)
	if [ "$(cat "$build/.rtdp-config-key" 2>/dev/null)" != "$cfgkey" ]; then
		log "generating .config for the $flavour kernel (tinyconfig + ${frags[*]#"$RTDP_ROOT"/scripts/})"
		"${kmake[@]}" -s tinyconfig >/dev/null
		"$work/scripts/kconfig/merge_config.sh" -Q -m -O "$build" "$build/.config" "${frags[@]}" >/dev/null
		"${kmake[@]}" -s olddefconfig >/dev/null
		check_config
		echo "$cfgkey" >"$build/.rtdp-config-key"
	fi

	log "building the $flavour kernel: bzImage and modules (-j$RTDP_JOBS; from scratch on 2 cores ~13 min perf, ~25 debug)"
	local t0=$SECONDS
	"${kmake[@]}" -s -j"$RTDP_JOBS" bzImage modules || die "kernel build failed"
	"${kmake[@]}" -s headers >/dev/null || die "make headers failed"
	echo "$key" >"$build/.rtdp-key"
	log "$flavour kernel built in $((SECONDS - t0)) s (key $key)"
}

do_selftests() {
	[ -f "$build/.rtdp-key" ] || die "no kernel build yet; run: scripts/kernel.sh build"
	local kvm="$work/tools/testing/selftests/kvm"
	# Our tests are compiled by the upstream Makefile, next to its own, so they
	# share kvm_util and its flags. Only changed files are copied.
	mkdir -p "$kvm/rtdp" "$stout/rtdp"
	local f ours=()
	for f in "$RTDP_ROOT"/selftests/*.[ch]; do
		[ -e "$f" ] || continue
		cmp -s "$f" "$kvm/rtdp/$(basename "$f")" || cp "$f" "$kvm/rtdp/"
		case "$f" in *.c) ours+=("rtdp/$(basename "$f" .c)") ;; esac
	done
	# Shell wrappers (tests that need setup around an upstream binary) go
	# next to our binaries as they are.
	for f in "$RTDP_ROOT"/selftests/*.sh; do
		[ -e "$f" ] || continue
		cmp -s "$f" "$stout/rtdp/$(basename "$f")" || install -m 755 "$f" "$stout/rtdp/"
	done
	# TEST_GEN_PROGS is only ever appended to (+=) by Makefile.kvm, so a value
	# from the environment adds our programs to the upstream list.
	log "building KVM selftests"
	TEST_GEN_PROGS="${ours[*]}" make -s -C "$kvm" OUTPUT="$stout" LDFLAGS=-static \
		KHDR_INCLUDES="-isystem $build/usr/include" -j"$RTDP_JOBS" >"$stout.log" 2>&1 ||
		{ tail -n 40 "$stout.log" >&2; die "selftest build failed (log: $stout.log)"; }
}

case "${1:-}" in
build) do_build ;;
key) cache_key ;;
options) wanted_options ;;
selftests) do_selftests ;;
env)
	printf 'RTDP_WORK=%q\nRTDP_BUILD=%q\nRTDP_SELFTESTS=%q\nRTDP_FLAVOUR=%q\n' \
		"$work" "$build" "$stout" "$flavour"
	;;
*) die "usage: $0 {build|selftests|env|key|options}" ;;
esac
