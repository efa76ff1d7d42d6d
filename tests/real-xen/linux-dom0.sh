#!/usr/bin/env bash
# Real Xen, x86_64, Linux dom0: Debian's Xen 4.17 boots Debian's 6.1 kernel as a PV dom0 with a
# busybox initramfs made here; /init loads xen-privcmd and xen-evtchn and runs xen-sys's
# privcmd_check example (static) on the privcmd backend: generic hypercalls with
# /dev/xen/hypercall buffers, the evtchn device, IOCTL_PRIVCMD_DM_OP errors, an MMAP_RESOURCE size
# query and RESTRICT. One line per check.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_LINUX_DOM0

. tests/lib/real-xen.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
xen="$XEN_X86"
ensure_debian_kernel
kver="$KVER"
vmlinuz="$VMLINUZ"
mods="$KMODS/drivers/xen"

# The test program, static so the initramfs needs no libraries.
build_prog() { # extra-rustflags target-dir
  RUSTFLAGS="-C target-feature=+crt-static $1" cargo build --locked -q --release -p xen-sys \
    --example privcmd_check --features privcmd --target x86_64-unknown-linux-gnu --target-dir "$2" \
    || return 1
  echo "$2/x86_64-unknown-linux-gnu/release/examples/privcmd_check"
}

# initramfs: busybox, the two modules, the program, /init.
make_initramfs() { # program cpio
local prog=$1
ir="$out/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,lib/modules}
cp /bin/busybox "$ir/bin/busybox"
for a in sh mount insmod reboot echo; do ln -s busybox "$ir/bin/$a"; done
cp "$mods/xen-privcmd.ko" "$mods/xen-evtchn.ko" "$ir/lib/modules/"
cp "$prog" "$ir/privcmd_check"
cat >"$ir/init" <<'INIT'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
insmod /lib/modules/xen-privcmd.ko
insmod /lib/modules/xen-evtchn.ko
echo "== privcmd_check starts"
/privcmd_check
echo "== privcmd_check exit status $?"
reboot -f
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet) >"$2"
}

boot() { # cpio log -> QEMU's exit status
  local rc=0
  timeout 120 qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m 1024 -smp 1 \
    -nographic -no-reboot -kernel "$xen" \
    -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=512M dom0_max_vcpus=1' \
    -initrd "$vmlinuz console=hvc0 earlyprintk=xen loglevel=4 rdinit=/init,$1" \
    </dev/null >"$2" 2>&1 || rc=$?
  return $rc
}

# Not inside make_initramfs's arguments: a failed build must end the scenario, not leave an old
# binary in place.
prog=$(build_prog "" "$out/static") || { echo "FAIL: privcmd_check does not build"; exit 1; }
make_initramfs "$prog" "$out/initramfs.cpio"
log="$out/linux-dom0.log"
start=$(date +%s%N)
rc=0; boot "$out/initramfs.cpio" "$log" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))

checks_verdict "$rc" 18
extraversion_of privcmd
# The ioctls newer than some kernels: refused (typed) exactly where the booted kernel predates
# the release that introduced them, present otherwise.
kmm=$(echo "$kver" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
gates=$(tr -d '\r' <"$log" | grep '^GATE ' || true)
[ "$(wc -l <<<"$gates")" -ge 3 ] || fail "fewer than 3 GATE lines"
while read -r _ op verdict since; do
  want=present
  [ "$(printf '%s\n' "$since" "$kmm" | sort -V | head -1)" = "$since" ] || want=refused
  [ "$verdict" = "$want" ] || fail "$op: $verdict on Linux $kver, want $want (it arrived in $since)"
done <<<"$gates"
gated=$(awk '{ printf "%s%s %s", sep, $2, $3; sep = ", " }' <<<"$gates")
echo "ok   Linux $kver PV dom0: $n privcmd/evtchn checks passed on $(grep -m1 -o 'Xen version [^ ]*' "$log" | tr -d '\r') in $ms ms of QEMU (kernel-gated: $gated)"

# The same program on a backend with two argument registers swapped must fail.
prog=$(build_prog "--cfg broken_backend" "$out/static-broken") || { echo "FAIL: the broken privcmd_check does not build"; exit 1; }
make_initramfs "$prog" "$out/initramfs-broken.cpio"
log="$out/linux-dom0-broken.log"
rc=0; boot "$out/initramfs-broken.cpio" "$log" || rc=$?
broken_verdict "$rc" "Linux dom0 (privcmd)"
