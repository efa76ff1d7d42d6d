#!/usr/bin/env bash
# Virtio on real Xen (x86, QEMU; VIRTIO_RELEASES, default 4.17 and 4.20, each with its Debian
# dom0 kernel and tools): Debian's Linux (6.1) as a PVH guest (no QEMU device model) finds two
# virtio-rng PCI functions served from dom0 by xen's virtio_attach example (`--pvh`: the 0xCF8
# read-back and a host bridge at 00:00.0; the guest boots with pci=noacpi): 00:03.0 in-process,
# 00:04.0 through the vhost-user front end from rust-vmm's vhost-device-rng, built from its
# published crate with `--features xen` (guest RAM handed over as Xen foreign mappings). The
# guest loads Debian's own virtio modules and reads /dev/hwrng from each device. Checks, one
# structured line each (VIRTIO CHECK name: ok|FAIL (detail)): the bus is found, both functions
# enumerate as 1af4:1044, virtio_pci binds them, both rngs register, reads return data of the
# asked size (all different), each queue's interrupts arrive as MSI-X (XEN_DMOP_inject_msi into
# the PVH guest); then virtio_attach is stopped with SIGTERM and tears down cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib/packages.sh
# shellcheck disable=SC2086
ensure_packages $PKGS_IOREQ
. tests/lib/real-xen.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# shellcheck source=tests/lib/dom0-initramfs.sh
. tests/lib/dom0-initramfs.sh
out="${CARGO_TARGET_DIR:-$PWD/target}/real-xen"
mkdir -p "$out"
ensure_xen_x86 "$out"
ensure_debian_kernel

. tests/lib/vhost-devices.sh
RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --profile server -p xen \
  --features vhost-user --example virtio_attach --target x86_64-unknown-linux-gnu --target-dir "$out/static"
server="$out/static/x86_64-unknown-linux-gnu/server/examples/virtio_attach"
backend=$(ensure_vhost_device rng 0.1.0)

# The guest: Debian's kernel and its own virtio modules, a busybox init that checks the device.
build_virtio_domu() { # dir
  local dir=$1 root m
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  for a in sh mount insmod cat echo ls dd od wc sort uniq head poweroff sleep grep tr timeout cut readlink basename; do
    ln -s busybox "$root/bin/$a"
  done
  for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/char/hw_random/virtio-rng; do
    [ -f "$KMODS/$m.ko" ] || { echo "FAIL: no $m.ko in Debian's kernel $KVER"; exit 1; }
    cp "$KMODS/$m.ko" "$root/lib/modules/"
  done
  # Load order from each module's own depends= (busybox insmod resolves nothing).
  local left order="" d ok
  left=$(cd "$root/lib/modules" && ls | sed 's/\.ko$//')
  while [ -n "$left" ]; do
    local next=""
    for m in $left; do
      ok=1
      for d in $(strings "$root/lib/modules/$m.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
        case " $order " in *" $d "*) ;; *) ok=0 ;; esac
      done
      if [ $ok = 1 ]; then order="$order $m"; else next="$next $m"; fi
    done
    [ "$next" != "$left" ] || { echo "FAIL: module dependencies outside the set:$left"; exit 1; }
    left=$next
  done
  echo "$order" >"$root/lib/modules/order"
  cat >"$root/init" <<'DOMU'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
check() { # name ok-condition-result detail
  if [ "$2" = 0 ]; then echo "VIRTIO CHECK $1: ok ($3)"; else echo "VIRTIO CHECK $1: FAIL ($3)"; fi
}
ls /sys/bus/pci/devices | tr '\n' ' ' >/tmp/bus
for slot in 03 04; do
  d=/sys/bus/pci/devices/0000:00:$slot.0
  [ -d $d ]; check "00:$slot.0 enumerates" $? "$(cat /tmp/bus)"
  id="$(cat $d/vendor 2>/dev/null):$(cat $d/device 2>/dev/null)"
  [ "$id" = 0x1af4:0x1044 ]; check "00:$slot.0 is a modern virtio-rng" $? "$id"
done
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "VIRTIO CHECK insmod $m: FAIL"
done
for slot in 03 04; do
  d=/sys/bus/pci/devices/0000:00:$slot.0
  [ -e $d/driver ] && [ "$(basename "$(readlink $d/driver)")" = virtio-pci ]
  check "virtio_pci binds 00:$slot.0" $? "$(readlink $d/driver)"
done
h=/sys/class/misc/hw_random
avail=$(cat $h/rng_available 2>/dev/null)
n=$(echo "$avail" | tr ' ' '\n' | grep -c '^virtio_rng')
[ "$n" = 2 ]; check "both devices are the kernel's rngs" $? "rng_available=$avail"
all=""
for r in $(echo "$avail" | tr ' ' '\n' | grep '^virtio_rng'); do
  echo "$r" >$h/rng_current
  [ "$(cat $h/rng_current)" = "$r" ]; check "$r selected" $? "rng_current=$(cat $h/rng_current)"
  a=$(timeout 20 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
  b=$(timeout 20 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
  [ ${#a} = 128 ] && [ ${#b} = 128 ]; check "$r: two 64-byte reads" $? "${#a} and ${#b} hex digits"
  [ "$a" != "$b" ]; check "$r: the reads differ" $? "$(echo "$a" | head -c 16)... vs $(echo "$b" | head -c 16)..."
  n=$(timeout 20 dd if=/dev/hwrng bs=4096 count=4 2>/dev/null | wc -c)
  [ "$n" = 16384 ]; check "$r: 16 KiB" $? "$n bytes"
  all="$all $a $b"
done
u=$(echo "$all" | tr ' ' '\n' | grep . | sort | uniq | wc -l)
[ "$u" = 4 ]; check "the two devices' bytes all differ" $? "$u distinct of 4"
irqs=$(grep -i virtio /proc/interrupts | tr -s ' ' | tr '\n' ';')
for v in virtio0 virtio1; do
  q=$(grep "$v-input" /proc/interrupts | tr -s ' ')
  # " N: COUNT PCI-MSI ... virtioK-input": the queue's own MSI-X vector fired.
  n=$(echo "$q" | cut -d' ' -f3)
  case "$q" in *PCI-MSI*) [ "${n:-0}" -gt 0 ] ;; *) false ;; esac
  check "$v's queue interrupts by MSI-X (XEN_DMOP_inject_msi)" $? "$irqs"
done
echo "VIRTIO DONE"
poweroff -f
DOMU
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet) >"$dir/vlinux.cpio"
  rm -rf "$root"
  cp "$VMLINUZ" "$dir/vlinux-vmlinuz"
  cat >"$dir/etc/xen/vlinux.cfg" <<'CFG'
name = "vlinux"
type = "pvh"
kernel = "/vlinux-vmlinuz"
ramdisk = "/vlinux.cpio"
cmdline = "console=hvc0 quiet rdinit=/init pci=noacpi"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

for rel in ${VIRTIO_RELEASES:-4.17 4.20}; do
  release_dom0 "$rel"
  ir="$out/virtio-initramfs-$rel"
  dom0_initramfs "$rel" "$ir"
  cp "$server" "$ir/virtio_attach"
  cp "$backend" "$ir/vhost-device-rng"
  build_virtio_domu "$ir"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
xl create -p /etc/xen/vlinux.cfg
domid=$(xl domid vlinux)
echo "== guest domain $domid"
# The back end first (it listens), then the front end with both devices. The guest's RAM:
# 128 MiB from 0 (PVH); pages Xen did not populate are reported, not mapped or handed over.
# (vhost-device-rng numbers its sockets: the first of --socket-path /tmp/rng.sock is rng.sock0.)
RUST_LOG=info /vhost-device-rng --socket-path /tmp/rng.sock >/tmp/backend.log 2>&1 &
b=$!
n=0; until [ -S /tmp/rng.sock0 ]; do sleep 0.1; n=$((n+1)); [ $n -gt 300 ] && { echo "== backend TIMEOUT"; break; }; done
XEN_LOG=info serve /tmp/v.log /virtio_attach --pvh "$domid" 0-7ffffff --rng 3 --vhost 4:rng:/tmp/rng.sock0
wait_for "virtio_attach: serving" /tmp/v.log
xl unpause vlinux
gone vlinux 240
stop virtio_attach $p VIRTIO
drain /tmp/v.log
# The back end waits for the next front end: stop it.
kill -TERM $b
wait $b
echo "== BACKEND EXIT $?"
sed 's/^/backend: /' /tmp/backend.log
tr -d '\r' </var/log/xen/guest-vlinux.log | grep -E '^VIRTIO |virtio|PCI' || echo "== no output from the guest"
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$out/virtio-initramfs-$rel.cpio"
  log="$out/virtio-pvh-$rel.log"
  boot_dom0 "$out/virtio-initramfs-$rel.cpio" plain
  FAIL_TAIL=80
  grep -E '^VIRTIO |^virtio_attach:|^backend: |^== BACKEND|^(INFO|WARN|DEBUG): ' <<<"$L" | sort | uniq -c | sort -rn | head -40 || true
  boot_verdict
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  grep -q '^VIRTIO CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in the guest"
  grep -q '^VIRTIO DONE' <<<"$L" || fail "the guest did not finish its checks"
  grep -q '== VIRTIO EXIT 0' <<<"$L" || fail "virtio_attach did not exit cleanly on SIGTERM"
  grep -q '^virtio_attach: stopped after [0-9]* requests' <<<"$L" || fail "virtio_attach did not report its teardown"
  n=$(grep -c '^VIRTIO CHECK .*: ok' <<<"$L")
  [ "$n" = 18 ] || fail "$n virtio checks passed, want 18"
  echo "ok   virtio-pci on real Xen $rel (Linux $kver dom0, Xen $rel's xl): Debian's Linux $KVER as a PVH guest (no QEMU) drives two virtio-rng devices from dom0 (in-process, and vhost-device-rng over vhost-user with Xen foreign mappings) with its own modules: $n checks passed; $(grep -m1 -o 'stopped after [0-9]* requests ([0-9]* refused)' <<<"$L"); $ms ms of QEMU"
done
