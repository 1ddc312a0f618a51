#!/usr/bin/env bash
# Fetch the pristine Linux source from Debian and unpack it once into the cache.
#
# The host's apt configuration is not touched: a private sources file, list
# directory and cache directory under $RTDP_CACHE/apt are used instead.
# Prints the path of the pristine tree on stdout.
source "$(dirname "$0")/common.sh"

apt_dir="$RTDP_CACHE/apt"
pristine="$RTDP_CACHE/src/$RTDP_KERNEL_DEB-$RTDP_KERNEL_DEB_VERSION"

if [ -f "$pristine/.rtdp-pristine" ]; then
	echo "$pristine"
	exit 0
fi

mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
cat >"$apt_dir/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $RTDP_KERNEL_SUITE main
SRC
apt_opts=(
	-o "Dir::Etc::SourceList=$apt_dir/sources.list"
	-o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
)

deb=$(ls "$apt_dir/debs/${RTDP_KERNEL_DEB}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ] || ! dpkg-deb -f "$deb" Version | grep -qxF "$RTDP_KERNEL_DEB_VERSION"; then
	rm -f "$apt_dir/debs/"*.deb
	log "apt update ($RTDP_KERNEL_SUITE, private lists)"
	apt-get "${apt_opts[@]}" -qq update || die "apt-get update of $RTDP_KERNEL_SUITE failed"
	if ! (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -qq download \
		"$RTDP_KERNEL_DEB=$RTDP_KERNEL_DEB_VERSION") 2>"$apt_dir/download.err"; then
		avail=$(apt-cache "${apt_opts[@]}" madison "$RTDP_KERNEL_DEB" 2>/dev/null |
			awk -F'|' '{gsub(/ /,"",$2); printf "%s ", $2}')
		cat "$apt_dir/download.err" >&2
		die "$RTDP_KERNEL_DEB=$RTDP_KERNEL_DEB_VERSION is not in $RTDP_KERNEL_SUITE; available: ${avail:-none}. Set RTDP_KERNEL_DEB_VERSION to one of them."
	fi
	deb=$(ls "$apt_dir/debs/${RTDP_KERNEL_DEB}_"*.deb | head -n1)
fi

log "unpacking $(basename "$deb")"
tmp="$RTDP_CACHE/src/.unpack.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
dpkg-deb -x "$deb" "$tmp/deb"
tarball=$(ls "$tmp"/deb/usr/src/linux-source-*.tar.xz | head -n1)
tar -C "$tmp" -xJf "$tarball"
top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n1)
rm -rf "$pristine"
mv "$top" "$pristine"
rm -rf "$tmp"
touch "$pristine/.rtdp-pristine"
echo "$pristine"
