#!/usr/bin/env bash
# initramfs.sh OUT.cpio.gz KVM_RTDP_KO
#
# Build the test guest's initramfs: static busybox, /init, the kvm modules
# and kvm_rtdp, the selftest binaries named in the test plan (rtdp_plan:
# selftests/vm-tests.list, narrowed by RTDP_TESTS), and that plan as
# /tests/plan. The archive is reproducible: sorted entries, fixed
# owners and mtimes, gzip without a timestamp.
source "$(dirname "$0")/common.sh"
eval "$(bash "$RTDP_ROOT/scripts/kernel.sh" env)"
out=$1
ko=$2

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,lib/modules,tests}

# Debian's busybox-static installs a static /bin/busybox.
[ -x /bin/busybox ] || die "/bin/busybox not found (apt-get install busybox-static)"
cp /bin/busybox "$root/bin/busybox"
cp "$RTDP_ROOT/scripts/guest-init.sh" "$root/init"
cp "$RTDP_ROOT/scripts/kunit-results.awk" "$root/lib/"
cp "$RTDP_ROOT/scripts/plan.sh" "$root/lib/plan.sh"
chmod 755 "$root/init"

for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do
	[ -f "$RTDP_BUILD/$m" ] || { [ "$m" = virt/lib/irqbypass.ko ] && continue; die "missing $m in $RTDP_BUILD"; }
	cp "$RTDP_BUILD/$m" "$root/lib/modules/"
done
cp "$ko" "$root/lib/modules/kvm_rtdp.ko"
# test-only modules built beside kvm_rtdp (Kbuild)
for m in kvm_rtdp_second kvm_rtdp_sw_external rtdp_rcu_hold; do
	cp "$(dirname "$ko")/../selftests/modules/$m.ko" "$root/lib/modules/"
done

plan="$root/tests/plan"
rtdp_plan >"$plan"
bench="$RTDP_ROOT/selftests/bench.list"
cp "$bench" "$root/tests/bench"
profile="$RTDP_ROOT/selftests/profile.list"
cp "$profile" "$root/tests/profile"
# The snapshot marker of `make profile` (scripts/profile/mark.c).
gcc -static -O2 -o "$root/bin/rtdp_mark" "$RTDP_ROOT/scripts/profile/mark.c" ||
	die "building rtdp_mark failed"
# The program of each entry (of the test plan and of the benchmark), and any
# argument naming a built selftest (a wrapper script's upstream binary).
{
	awk '!/^[[:space:]]*(#|$|@)/ { print $4; for (i = 5; i <= NF; i++) print "?" $i }' "$plan"
	awk '!/^[[:space:]]*(#|$)/ { print $3 }' "$bench"
	awk '!/^[[:space:]]*(#|$)/ { print $5 }' "$profile"
} | sort -u | while read -r bin; do
	case "$bin" in
	\?*) bin=${bin#\?}; [ -f "$RTDP_SELFTESTS/$bin" ] || continue ;;
	*) [ -x "$RTDP_SELFTESTS/$bin" ] || die "selftest $bin not built (in $RTDP_SELFTESTS)" ;;
	esac
	mkdir -p "$root/tests/$(dirname "$bin")"
	cp "$RTDP_SELFTESTS/$bin" "$root/tests/$bin"
done

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 -exec touch -h -d @0 {} + &&
	find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc --owner=0:0 --reproducible) | gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
log "initramfs $(du -h "$out" | cut -f1) at $out"
