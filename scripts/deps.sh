#!/usr/bin/env bash
# Install what the pipeline needs: Debian packages and bindgen-cli from crates.io.
#
# As root with apt, missing packages are installed. Otherwise the exact command
# to run is printed and the script fails. Nothing but Debian packages and crates
# is downloaded.
source "$(dirname "$0")/common.sh"

pkgs=(
	"rustc-web=$RTDP_RUSTC_DEB_VERSION"
	"rust-web-src=$RTDP_RUSTC_DEB_VERSION"
	"libstd-rust-web-dev=$RTDP_RUSTC_DEB_VERSION"
	"rustfmt-web=$RTDP_RUSTC_DEB_VERSION"
	"rust-web-clippy=$RTDP_RUSTC_DEB_VERSION"
	clang-19 lld-19 llvm-19 libclang-19-dev
	make gcc libc6-dev git flex bison bc libelf-dev libssl-dev
	cpio kmod busybox-static qemu-system-x86 xz-utils ca-certificates
	debian-archive-keyring perl gnuplot-nox
)
# cargo builds bindgen-cli and runs the host tests; rustup's is used when it is
# on PATH, otherwise Debian's of the same version as rustc-web.
command -v cargo >/dev/null || pkgs+=("cargo-web=$RTDP_RUSTC_DEB_VERSION")

missing=()
for p in "${pkgs[@]}"; do
	name=${p%%=*}
	want=${p#*=}
	have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
	case "$have" in
	"install ok installed "*)
		[ "$name" = "$p" ] || [ "${have##* }" = "$want" ] || missing+=("$p")
		;;
	*) missing+=("$p") ;;
	esac
done

if [ ${#missing[@]} -gt 0 ]; then
	cmd="apt-get install -y --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		die "missing packages; run as root: apt-get update && $cmd"
	fi
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null; then
		# An install interrupted half-way leaves packages unpacked but not
		# configured; finish that once and try again before giving up.
		log "apt-get install failed; running dpkg --configure -a and retrying once"
		dpkg --configure -a >/dev/null 2>&1 || true
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null ||
			die "apt-get failed; the command was: $cmd"
	fi
fi

bindgen="$RTDP_CACHE/tools/bin/bindgen"
if ! "$bindgen" --version 2>/dev/null | grep -qx "bindgen $RTDP_BINDGEN_VERSION"; then
	log "building bindgen-cli $RTDP_BINDGEN_VERSION (~2 min, once)"
	cargo install --quiet --locked bindgen-cli --version "$RTDP_BINDGEN_VERSION" \
		--root "$RTDP_CACHE/tools" || die "cargo install bindgen-cli failed"
fi
log "dependencies present"
