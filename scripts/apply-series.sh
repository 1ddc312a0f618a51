#!/usr/bin/env bash
# apply-series.sh PRISTINE WORK PATCHDIR
#
# Make WORK equal to PRISTINE plus the quilt-style series in PATCHDIR/series,
# touching only files whose content changes, so that an incremental kernel
# build recompiles only what the series changed.
#
# The series is applied first to a staging copy of the files it touches. If a
# patch does not apply, the script names the patch, prints its rejects and
# exits 1 with WORK left exactly as it was. Files touched by the previously
# applied series (recorded in WORK/.rtdp-touched) are restored from PRISTINE
# when the new series no longer changes them.
set -euo pipefail

pristine=$(cd "$1" && pwd)
work=$(cd "$2" && pwd)
patchdir=$(cd "$3" && pwd)

err() { printf '[rtdp] error: %s\n' "$*" >&2; }

series=()
if [ -f "$patchdir/series" ]; then
	while read -r line; do
		line=${line%%#*}
		line=$(echo "$line" | tr -d '[:space:]')
		[ -n "$line" ] || continue
		[ -f "$patchdir/$line" ] || { err "series names $line, which is not in $patchdir"; exit 1; }
		series+=("$line")
	done <"$patchdir/series"
fi

# Paths a patch touches, from its `diff --git a/X b/Y` headers.
touched_by() {
	sed -n 's|^diff --git a/\([^ ]*\) b/\([^ ]*\)$|\1\n\2|p' "$1"
}

list=$(mktemp)
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$list"' EXIT

{
	for p in "${series[@]}"; do touched_by "$patchdir/$p"; done
	if [ -f "$work/.rtdp-touched" ]; then cat "$work/.rtdp-touched"; fi
} | sort -u >"$list"

while read -r f; do
	if [ -f "$pristine/$f" ]; then
		mkdir -p "$stage/$(dirname "$f")"
		cp "$pristine/$f" "$stage/$f"
	fi
done <"$list"

for p in "${series[@]}"; do
	if ! out=$(cd "$stage" && GIT_CEILING_DIRECTORIES="$(dirname "$stage")" \
		git apply --reject --whitespace=nowarn "$patchdir/$p" 2>&1); then
		err "patch $p does not apply to $(basename "$pristine")"
		printf '%s\n' "$out" >&2
		find "$stage" -name '*.rej' | sort | while read -r rej; do
			printf -- '--- reject %s\n' "${rej#"$stage"/}" >&2
			cat "$rej" >&2
		done
		err "setup stopped at $p; the work tree is unchanged"
		exit 1
	fi
done

changed=0
while read -r f; do
	if [ -f "$stage/$f" ]; then
		if ! cmp -s "$stage/$f" "$work/$f"; then
			mkdir -p "$work/$(dirname "$f")"
			rm -f "$work/$f"
			cp "$stage/$f" "$work/$f"
			changed=$((changed + 1))
		fi
	elif [ -e "$work/$f" ]; then
		rm -f "$work/$f"
		changed=$((changed + 1))
	fi
done <"$list"

for p in "${series[@]}"; do touched_by "$patchdir/$p"; done | sort -u >"$work/.rtdp-touched"
printf '[rtdp] series: %d patch(es) applied, %d file(s) changed in the work tree\n' \
	"${#series[@]}" "$changed" >&2
