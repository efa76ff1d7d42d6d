#!/usr/bin/env bash
# Real IOREQ: Debian's Xen 4.17 with a Linux 6.1 PV dom0 running xenstored and xl; xl creates
# the project's freestanding PVH guest paused, the Rust server (xen's regbank example on the
# xen::linux platform) claims its device, the guest is unpaused and checks every answer itself
# (MMIO of 1/2/4/8 bytes, port I/O, rep outsb/insb through guest RAM, unclaimed, straddling and
# released accesses), then the server is stopped with SIGTERM and must tear down cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
. tests/lib/debian-rust.sh
ensure_packages qemu-system-x86 xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils busybox-static cpio gcc-i686-linux-gnu
ensure_debian_rust >/dev/null

out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
cache="${XEN_ABI_CACHE:-/var/cache/xen-abi}/linux"
mkdir -p "$out" "$cache"
xen="$out/xen-4.17-amd64"
[ -s "$xen" ] || zcat /boot/xen-4.17-amd64.gz > "$xen"

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || { apt-get update -qq || true; kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
[ -n "$kpkg" ] || { echo "FAIL: cannot find Debian's linux-image-amd64 kernel package"; exit 1; }
kver=${kpkg#linux-image-}
kroot="$cache/$kpkg"
if [ ! -d "$kroot/boot" ]; then
  mkdir -p "$cache/debs" && chown _apt "$cache/debs" 2>/dev/null || true
  (cd "$cache/debs" && apt-get download -qq "$kpkg") || { echo "FAIL: cannot download $kpkg"; exit 1; }
  rm -rf "$kroot.tmp"; dpkg-deb -x "$cache"/debs/"$kpkg"_*.deb "$kroot.tmp"; mv "$kroot.tmp" "$kroot"
fi
vmlinuz="$kroot/boot/vmlinuz-$kver"
mods="$kroot/lib/modules/$kver/kernel"

# The guest (32-bit PVH, Debian's rustc-web for i686) and the server (static).
(cd tests/xen-pvh-guest && CARGO_TARGET_I686_UNKNOWN_LINUX_GNU_LINKER=i686-linux-gnu-gcc \
  RUSTFLAGS="-C relocation-model=static" debian_cargo build --locked -q --release \
  --target i686-unknown-linux-gnu --target-dir "$out/pvh-guest")
guest="$out/pvh-guest/i686-unknown-linux-gnu/release/xen-pvh-guest-test"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --release -p xen --features std \
  --example regbank --target x86_64-unknown-linux-gnu --target-dir "$out/static"
server="$out/static/x86_64-unknown-linux-gnu/release/examples/regbank"

# dom0 initramfs: busybox, the Xen modules, xl/xenstored/xenconsoled with their libraries.
ir="$out/ioreq-initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,run,etc/xen,var/log/xen,var/lib/xen,lib/modules}
ln -s ../run "$ir/var/run"
cp /bin/busybox "$ir/bin/busybox"
for a in sh mount insmod mkdir sleep cat grep kill reboot echo; do ln -s busybox "$ir/bin/$a"; done
for m in drivers/xen/xen-evtchn drivers/xen/xen-gntdev drivers/xen/xen-gntalloc drivers/xen/xen-privcmd drivers/xen/xenfs/xenfs; do
  cp "$mods/$m.ko" "$ir/lib/modules/"
done
copy_bin() { # path-in-host [name in /bin]
  local src; src=$(readlink -f "$1")
  mkdir -p "$ir$(dirname "$1")"
  cp "$src" "$ir$1"
  ldd "$src" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    [ -e "$ir$lib" ] || { mkdir -p "$ir$(dirname "$lib")"; cp "$(readlink -f "$lib")" "$ir$lib"; }
  done
  [ -n "${2:-}" ] && ln -sf "$1" "$ir/bin/$2"
  return 0
}
X=/usr/lib/xen-4.17/bin
copy_bin $X/xl xl
copy_bin $X/xenstored xenstored
copy_bin $X/xenconsoled xenconsoled
copy_bin $X/xen-init-dom0 xen-init-dom0
copy_bin /usr/bin/xenstore-read
ln -sf /usr/bin/xenstore-read "$ir/bin/xenstore-read"
gcc_s=$(find /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu -name 'libgcc_s.so.1' | head -1)
cp "$gcc_s" "$ir/lib/x86_64-linux-gnu/"
cp "$guest" "$ir/guest.elf"
cp "$server" "$ir/regbank"
cat >"$ir/etc/xen/guest.cfg" <<'CFG'
name = "guest"
type = "pvh"
kernel = "/guest.elf"
memory = 16
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
cat >"$ir/init" <<'INIT'
#!/bin/sh
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/lock
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do insmod /lib/modules/$m.ko; done
mount -t xenfs xenfs /proc/xen
XENSTORED_ROOTDIR=/run/xenstored xenstored --pid-file /run/xenstored.pid
n=0; until xenstore-read -s / >/dev/null 2>&1; do sleep 0.1; n=$((n+1)); [ $n -gt 100 ] && break; done
xen-init-dom0
xenconsoled --log=guest --log-dir=/var/log/xen &
echo "== xl create -p"
xl create -p /etc/xen/guest.cfg
domid=$(xl domid guest)
echo "== guest domain $domid"
/regbank "$domid" >/tmp/srv.log 2>&1 &
srv=$!
n=0; until grep -q serving /tmp/srv.log; do sleep 0.05; n=$((n+1)); [ $n -gt 200 ] && break; done
cat /tmp/srv.log
xl unpause guest
n=0; while xl domid guest >/dev/null 2>&1; do sleep 0.2; n=$((n+1)); [ $n -gt 300 ] && break; done
echo "== guest gone after ${n} polls"
kill -TERM $srv
wait $srv
echo "== SERVER EXIT $?"
cat /tmp/srv.log
reboot -f
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet) >"$out/ioreq-initramfs.cpio"

log="$out/ioreq-pvh.log"
start=$(date +%s%N)
rc=0
timeout 180 qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m 1024 -smp 1 \
  -nographic -no-reboot -kernel "$xen" \
  -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=512M dom0_max_vcpus=1' \
  -initrd "$vmlinuz console=hvc0 earlyprintk=xen loglevel=4 rdinit=/init,$out/ioreq-initramfs.cpio" \
  </dev/null >"$log" 2>&1 || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))

fail() {
  echo "FAIL: $*"
  echo "--- QEMU log tail ($log):"
  tail -60 "$log" | tr -d '\r'
  exit 1
}
tr -d '\r' <"$log" | grep -E 'GUEST CHECK|GUEST TIMING' | sed 's/^(XEN) //' || true
[ "$rc" = 124 ] && fail "QEMU timed out"
grep -q 'GUEST CHECK .*: FAIL' "$log" && fail "failing guest checks"
grep -q 'GUEST RESULT: PASS' "$log" || fail "no GUEST RESULT: PASS line"
grep -q '== SERVER EXIT 0' "$log" || fail "the server did not exit cleanly on SIGTERM"
grep -q 'regbank: stopped after .* requests, torn down' "$log" || fail "the server did not report its teardown"
n=$(grep -c 'GUEST CHECK .*: ok' "$log")
echo "ok   IOREQ on real Xen: $n guest checks passed against the Rust server; SIGTERM teardown clean; $ms ms of QEMU"
