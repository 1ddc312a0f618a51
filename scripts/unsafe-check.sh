#!/usr/bin/env bash
# unsafe-check.sh [RUST-DIR]: unsafe code in kvm_rtdp is confined by the
# build, not by convention. Checks, on rust/ (or RUST-DIR):
#   - the crate root declares every module with #[forbid(unsafe_code)] but
#     `kvm` (the boundary with kvm.ko) and `entries` (the entry points), and
#     has no unsafe code of its own; a module's submodules inherit the
#     forbid, which no inner #[allow] can lift;
#   - every .rs file at the top of rust/ and in rust/core/src is declared in
#     the crate root (rust/kvm_rtdp.rs) or, for the host-only test helper,
#     the host crate's lib.rs: none is pulled in from elsewhere unforbidden;
#   - the host crate forbids unsafe_code for all of rust/core ([lints.rust]).
# Prints one KTAP line: ok|not ok unsafe confined [# what is wrong].
set -uo pipefail
dir=${1:-$(cd "$(dirname "$0")/../rust" && pwd)}
root="$dir/kvm_rtdp.rs"
problems=()

# NAME per `mod` declaration of the crate root, with FORBID=1 when one of
# the attribute lines right above it is #[forbid(unsafe_code)].
decls=$(awk '
	/^[[:space:]]*#\[/ { if ($0 ~ /^[[:space:]]*#\[forbid\(unsafe_code\)\]/) f = 1
		if (match($0, /#\[path = "[^"]*"\]/)) { p = substr($0, RSTART + 10, RLENGTH - 12) }
		next }
	/^[[:space:]]*(pub(\([a-z]+\))? )?mod [a-z_0-9]+;/ {
		name = $0; sub(/.*mod /, "", name); sub(/;.*/, "", name)
		print name, f + 0, (p == "" ? name ".rs" : p); f = 0; p = ""; next }
	/^[[:space:]]*(pub(\([a-z]+\))? )?mod [a-z_0-9]+[[:space:]]*\{/ {
		name = $0; sub(/.*mod /, "", name); sub(/[[:space:]]*\{.*/, "", name)
		print name, 2, "-"; f = 0; p = ""; next }
	{ f = 0; p = "" }' "$root")
declared=" "
while read -r name forbid path; do
	[ -n "$name" ] || continue
	declared+="$path "
	case "$name:$forbid" in
	kvm:* | entries:*) ;;
	*:1) ;;
	*:2) problems+=("inline module $name in kvm_rtdp.rs") ;;
	*) problems+=("mod $name without #[forbid(unsafe_code)]") ;;
	esac
done <<<"$decls"

# The root's own code (comments and string literals aside) has no unsafe.
if sed -e 's://.*$::' "$root" | grep -qwE 'unsafe|no_mangle|export_name|link_section'; then
	problems+=("unsafe code in the crate root")
fi

for f in "$dir"/*.rs "$dir"/core/src/*.rs; do
	[ -e "$f" ] || continue
	rel=${f#"$dir"/}
	case "$rel" in kvm_rtdp.rs | core/src/lib.rs) continue ;; esac
	case "$declared" in *" $rel "*) continue ;; esac
	if [ "$rel" = core/src/test_rng.rs ] &&
		grep -qE '^#\[cfg\(test\)\]' "$dir/core/src/lib.rs" &&
		grep -qE '^mod test_rng;' "$dir/core/src/lib.rs"; then
		continue
	fi
	problems+=("$rel is not declared in kvm_rtdp.rs")
done

if ! awk '/^\[lints\.rust\]/ { s = 1; next } /^\[/ { s = 0 }
	s && /^unsafe_code[[:space:]]*=[[:space:]]*"forbid"/ { ok = 1 } END { exit !ok }' \
	"$dir/core/Cargo.toml"; then
	problems+=("rust/core/Cargo.toml: no unsafe_code = \"forbid\" under [lints.rust]")
fi

if [ ${#problems[@]} -eq 0 ]; then
	echo "ok unsafe confined # only kvm/ and entries.rs may use unsafe"
	exit 0
fi
detail=$(printf '%s; ' "${problems[@]}")
echo "not ok unsafe confined # ${detail%; }"
exit 1
