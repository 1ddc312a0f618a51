# shellcheck shell=bash
# Shared settings for the rtdp scripts. Sourced, never executed.
#
# Every variable here can be overridden from the environment; README lists them.

set -euo pipefail

RTDP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian package that carries the pristine kernel source, and its pinned version.
# If the archive no longer serves this exact version, fetch fails and names the
# versions it does serve; set RTDP_KERNEL_DEB_VERSION to one of them.
RTDP_KERNEL_DEB=${RTDP_KERNEL_DEB:-linux-source-7.3}
RTDP_KERNEL_DEB_VERSION=${RTDP_KERNEL_DEB_VERSION:-7.3.4-1~bpo13+1}
RTDP_KERNEL_SUITE=${RTDP_KERNEL_SUITE:-trixie-backports}

# Rust toolchain for the kernel (Debian's, which ships rust-src); bindgen from crates.io.
RTDP_RUSTC_DEB_VERSION=${RTDP_RUSTC_DEB_VERSION:-1.85.0+dfsg3-1~deb12u3}
RTDP_BINDGEN_VERSION=${RTDP_BINDGEN_VERSION:-0.72.1}

# Everything built or fetched lives here, outside the checkout.
RTDP_CACHE=${RTDP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rtdp}

RTDP_JOBS=${RTDP_JOBS:-$(nproc)}

# The kernel build wants Debian's rustc (rustup's has no rust-src) and LLVM 19.
RTDP_KMAKE_ARGS=(LLVM=-19 RUSTC=/usr/bin/rustc BINDGEN="$RTDP_CACHE/tools/bin/bindgen")

# The guest's test plan: selftests/vm-tests.list, or only its entries named
# in RTDP_TESTS (`make check T="name ..."`), in the plan's order. A name that
# is not in the plan is an error, not an empty run.
rtdp_plan() {
	local plan="$RTDP_ROOT/selftests/vm-tests.list" t
	if [ -z "${RTDP_TESTS:-}" ]; then
		cat "$plan"
		return
	fi
	for t in $RTDP_TESTS; do
		awk -v t="$t" '$1 == t { found = 1 } END { exit !found }' "$plan" ||
			die "T=$t: no such entry in selftests/vm-tests.list"
	done
	# The entries, and the plan's declarations (@retry-on, @may-skip) of them.
	# shellcheck disable=SC2086
	awk -v want=" $(echo $RTDP_TESTS) " '
		/^@/ { if (index(want, " " $2 " ")) print; next }
		!/^[[:space:]]*(#|$)/ && index(want, " " $1 " ")' "$plan"
}

log() { printf '[rtdp] %s\n' "$*" >&2; }
die() { printf '[rtdp] error: %s\n' "$*" >&2; exit 1; }
