#!/usr/bin/env bash
# Virtio on real Xen (x86, QEMU; VIRTIO_RELEASES, default 4.17 and 4.20, each with its Debian
# dom0 kernel and tools): Debian's Linux (6.1) as a PVH guest (no QEMU device model) finds three
# virtio PCI functions served from dom0 by xen's virtio_attach example (`--pvh`: the 0xCF8
# read-back and a host bridge at 00:00.0; the guest boots with pci=noacpi): 00:03.0 an
# in-process rng; 00:04.0 an rng, 00:05.0 a console and 00:06.0 a SCSI disk through the
# vhost-user front end, from rust-vmm's vhost-device-rng, -console and -scsi built from their
# published crates with `--features xen` (guest RAM handed over as Xen foreign mappings). The
# guest loads Debian's own virtio and SCSI modules, reads /dev/hwrng from each rng, exchanges a
# line each way with dom0 over the console (the back end's TCP side), reads a pattern dom0 put
# in the disk's file and writes its own, which dom0 then finds in the file. Then vhost-device-rng is killed mid-run: the guest sees
# its device report NEEDS_RESET, the back end is started again, the front end reconnects, and
# the guest resets the device (unbind and bind of virtio-pci) and reads from it again.
# Checks, one structured line each (VIRTIO CHECK name: ok|FAIL (detail); dom0's side as
# VIRTIO HOST CHECK): the bus is found, the functions enumerate as 1af4:1044/1043, virtio_pci
# binds them, both rngs register, reads return data of the asked size (all different), each
# queue's interrupts arrive as MSI-X (XEN_DMOP_inject_msi into the PVH guest), the console
# lines arrive, the back end's death and return; then virtio_attach is stopped with SIGTERM and
# tears down cleanly.
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
console_backend=$(ensure_vhost_device console 0.1.0)
scsi_backend=$(ensure_vhost_device scsi 0.1.0)

# The guest: Debian's kernel and its own virtio modules, a busybox init that checks the device.
build_virtio_domu() { # dir
  local dir=$1 root m
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
  cp /bin/busybox "$root/bin/busybox"
  for a in sh mount insmod cat echo ls dd od wc sort uniq head poweroff sleep grep tr timeout cut readlink basename stty md5sum printf; do
    ln -s busybox "$root/bin/$a"
  done
  for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/char/hw_random/virtio-rng \
    drivers/char/virtio_console drivers/scsi/scsi_common drivers/scsi/scsi_mod drivers/scsi/sd_mod \
    drivers/scsi/virtio_scsi block/t10-pi lib/crc-t10dif lib/crc64-rocksoft lib/crc64 \
    crypto/crct10dif_common crypto/crct10dif_generic crypto/crc64_rocksoft_generic; do
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
for f in 03:1044:rng 04:1044:rng 05:1043:console 06:1048:scsi; do
  slot=${f%%:*}; want=${f#*:}; want=${want%:*}
  d=/sys/bus/pci/devices/0000:00:$slot.0
  [ -d $d ]; check "00:$slot.0 enumerates" $? "$(cat /tmp/bus)"
  id="$(cat $d/vendor 2>/dev/null):$(cat $d/device 2>/dev/null)"
  [ "$id" = 0x1af4:0x$want ]; check "00:$slot.0 is a modern virtio-${f##*:}" $? "$id"
done
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "VIRTIO CHECK insmod $m: FAIL"
done
for slot in 03 04 05 06; do
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
# The console (vhost-device-console, its TCP side in dom0): its port is the second hvc (hvc0
# is Xen's). One line each way.
n=0; until [ -e /dev/hvc1 ]; do sleep 0.2; n=$((n+1)); [ $n -gt 150 ] && break; done
[ -e /dev/hvc1 ]; check "00:05.0's console port is /dev/hvc1" $? "$(ls /dev | grep hvc | tr '\n' ' ')"
exec 5<>/dev/hvc1
stty raw -echo <&5
echo "GUEST-SAYS-hello-dom0" >&5
line=""; read -t 120 line <&5
line=$(echo "$line" | tr -d '\r')
# vhost-device-console 0.1.0 reports an rx buffer used once per byte written into it (each
# time with the length so far), so the driver reads every prefix of the line (and its
# newline) in turn: read stops at the first newline, after the whole line's prefix.
want=DOM0-SAYS-hello-guest; prefixes=""; i=1
while [ $i -le ${#want} ]; do prefixes="$prefixes${want:0:$i}"; i=$((i+1)); done
prefixes="$prefixes$want"
case "$line" in
  "$want") how="the line" ;;
  "$prefixes") how="as every prefix of the line in turn (vhost-device-console 0.1.0 uses an rx buffer once per byte)" ;;
  *) how="" ;;
esac
[ -n "$how" ]; check "console: dom0's line arrives through vhost-device-console" $? "${how:-got '$line'}"
exec 5<&-
# The SCSI disk (vhost-device-scsi on an 8 MiB file in dom0): dom0 wrote a pattern at sector
# 100; the guest writes 64 KiB at sector 1024 and a line at sector 200, drops its caches and
# reads them back; dom0 checks its file holds them (the md5 printed here).
n=0; until [ -b /dev/sda ] || [ $n -gt 150 ]; do sleep 0.2; n=$((n+1)); done
[ -b /dev/sda ]; check "00:06.0's disk is /dev/sda" $? "$(ls /sys/block | tr '\n' ' ')"
got=$(dd if=/dev/sda bs=512 skip=100 count=1 2>/dev/null | head -c 16)
[ "$got" = "HOST-WROTE-THIS." ]; check "scsi: reads what dom0 wrote into the file" $? "got '$got'"
dd if=/dev/urandom of=/tmp/pattern bs=4096 count=16 2>/dev/null
dd if=/tmp/pattern of=/dev/sda bs=4096 seek=128 conv=fsync 2>/dev/null
printf 'GUEST-WROTE-THIS' | dd of=/dev/sda bs=512 seek=200 conv=sync,fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
want=$(md5sum </tmp/pattern | cut -d' ' -f1)
back=$(dd if=/dev/sda bs=4096 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$back" = "$want" ]; check "scsi: 64 KiB written and read back" $? "md5 $back, wrote $want"
echo "VIRTIO DATA scsi-md5 $want"
line=$(dd if=/dev/sda bs=512 skip=200 count=1 2>/dev/null | head -c 16)
[ "$line" = "GUEST-WROTE-THIS" ]; check "scsi: a sector written and read back" $? "got '$line'"
# The relay's cost: dom0 counts virtio_attach's system calls (strace -c) while the guest reads
# 256 times 64 bytes from the vhost-user rng (00:04.0, the second rng).
echo virtio_rng.1 >$h/rng_current
echo "VIRTIO PHASE bench-start"
sleep 8
n=$(dd if=/dev/hwrng bs=64 count=256 2>/dev/null | wc -c)
echo "VIRTIO PHASE bench-end"
[ "$n" = 16384 ]; check "bench: 256 reads of 64 bytes from $(cat $h/rng_current)" $? "$n bytes"
sleep 3
# The back end dies mid-run (dom0 kills it when it sees this line, and starts it again
# 3 s after the front end noticed).
v=$(basename /sys/bus/pci/devices/0000:00:04.0/virtio*)
others=$(cat $h/rng_available | tr ' ' '\n' | grep '^virtio_rng')
echo "VIRTIO PHASE kill-backend $v"
n=0; s=0
until [ $((s & 0x40)) != 0 ] || [ $n -gt 600 ]; do sleep 0.2; n=$((n+1)); s=$(cat /sys/bus/virtio/devices/$v/status); done
[ $((s & 0x40)) != 0 ]; check "00:04.0 reports NEEDS_RESET once its back end is gone" $? "status $s after $n polls"
# Reset the device (what the spec asks of a driver that sees NEEDS_RESET): unbind and bind.
sleep 15
echo "VIRTIO PHASE reset $v"
echo 0000:00:04.0 >/sys/bus/pci/drivers/virtio-pci/unbind
echo 0000:00:04.0 >/sys/bus/pci/drivers/virtio-pci/bind
v=$(basename /sys/bus/pci/devices/0000:00:04.0/virtio* 2>/dev/null)
s=$(cat /sys/bus/virtio/devices/$v/status 2>/dev/null)
[ "$((s & 0x4f))" = 15 ]; check "00:04.0 negotiated again after the reset" $? "$v status $s"
new=""
for r in $(cat $h/rng_available | tr ' ' '\n' | grep '^virtio_rng'); do
  case " $(echo $others) " in *" $r "*) ;; *) new=$r ;; esac
done
[ -z "$new" ] && new=$(cat $h/rng_available | tr ' ' '\n' | grep '^virtio_rng' | tail -n1)
echo "$new" >$h/rng_current
a=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ ${#a} = 128 ]; check "00:04.0 ($new) reads again through the restarted back end" $? "${#a} hex digits"
# The front end dies mid-run (dom0 kills virtio_attach with SIGKILL and starts it again with
# the same arguments and its --state file): the in-process rng and the console carry on.
# vhost-device-scsi 0.1.0 (vhost-user-backend 0.10) cannot continue its rings with a new
# front end, so its device will need a reset: let go of the disk first (a clean removal,
# synchronised while it works) so that shutting down does not wait on it.
echo 1 >/sys/block/sda/device/delete
n=0; while [ -e /sys/block/sda ] && [ $n -lt 100 ]; do sleep 0.2; n=$((n+1)); done
[ ! -e /sys/block/sda ]; check "the SCSI disk let go of before the front end's restart" $? "$(ls /sys/block | tr '\n' ' ')"
echo "VIRTIO PHASE kill-frontend"
sleep 30
for f in 03 05; do
  v=$(basename /sys/bus/pci/devices/0000:00:$f.0/virtio*)
  s=$(cat /sys/bus/virtio/devices/$v/status)
  [ "$((s & 0x4f))" = 15 ]; check "00:$f.0 carries on after the front end's restart" $? "$v status $s"
done
echo virtio_rng.0 >$h/rng_current
a=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ ${#a} = 128 ]; check "00:03.0 reads after the front end's restart" $? "${#a} hex digits"
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
  cp "$console_backend" "$ir/vhost-device-console"
  cp "$scsi_backend" "$ir/vhost-device-scsi"
  for a in nc mkfifo ifconfig dd md5sum head cut printf; do ln -sf busybox "$ir/bin/$a"; done
  build_virtio_domu "$ir"
  cat >"$ir/init" <<'INIT'
#!/bin/sh
. /etc/dom0.sh
glog=/var/log/xen/guest-vlinux.log
xl create -p /etc/xen/vlinux.cfg
domid=$(xl domid vlinux)
echo "== guest domain $domid"
# The back end first (it listens), then the front end with both devices. The guest's RAM:
# 128 MiB from 0 (PVH); pages Xen did not populate are reported, not mapped or handed over.
# (vhost-device-rng numbers its sockets: the first of --socket-path /tmp/rng.sock is rng.sock0.)
# await PATTERN FILE SECONDS: until the file has the pattern; a line every 20 s meanwhile (the
# harness takes 300 s of silence for a hang), the guest's console on a timeout.
await() {
  local n=0
  until grep -q "$1" "$2" 2>/dev/null; do
    sleep 0.5; n=$((n+1))
    [ $((n % 40)) = 0 ] && echo "== still waiting for '$1' in $2 ($((n / 2)) s)"
    if [ $n -gt $(($3 * 2)) ]; then
      echo "== TIMEOUT waiting for '$1' in $2; the guest's console:"
      tr -d '\r' <$glog | tail -n 40
      return 1
    fi
  done
}
sock() { n=0; until [ -S "$1" ]; do sleep 0.1; n=$((n+1)); [ $n -gt 300 ] && { echo "== no socket $1"; break; }; done; }
RUST_LOG=info /vhost-device-rng --socket-path /tmp/rng.sock >/tmp/backend.log 2>&1 &
b=$!
sock /tmp/rng.sock0
# The console's other side: its TCP port in dom0, a line each way.
ifconfig lo 127.0.0.1 up
/vhost-device-console --socket-path /tmp/con.sock --backend network --tcp-port 12345 >/tmp/con-backend.log 2>&1 &
cb=$!
sock /tmp/con.sock0
mkfifo /tmp/to-guest
exec 6<>/tmp/to-guest
nc 127.0.0.1 12345 <&6 >/tmp/from-guest &
nc_pid=$!
# The disk: 8 MiB, dom0's pattern at sector 100.
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=8 2>/dev/null
printf 'HOST-WROTE-THIS.' | dd of=/tmp/disk.img bs=512 seek=100 conv=notrunc 2>/dev/null
RUST_LOG=info /vhost-device-scsi --socket-path /tmp/scsi.sock /tmp/disk.img >/tmp/scsi-backend.log 2>&1 &
sb=$!
sock /tmp/scsi.sock
args="--pvh --state /tmp/va.state $domid 0-7ffffff --rng 3 --vhost 4:rng:/tmp/rng.sock0 --vhost 5:console:/tmp/con.sock0 --vhost 6:scsi:/tmp/scsi.sock"
# shellcheck disable=SC2086
XEN_LOG=info serve /tmp/v.log /virtio_attach $args
wait_for "virtio_attach: serving" /tmp/v.log
xl unpause vlinux
await GUEST-SAYS-hello-dom0 /tmp/from-guest 240
if grep -q GUEST-SAYS-hello-dom0 /tmp/from-guest; then echo "VIRTIO HOST CHECK console: the guest's line arrives in dom0: ok"; else echo "VIRTIO HOST CHECK console: the guest's line arrives in dom0: FAIL ($(cat /tmp/from-guest))"; fi
echo "DOM0-SAYS-hello-guest" >&6
# System calls per kick while the guest reads from the vhost-user rng.
if await "VIRTIO PHASE bench-start" $glog 240; then
  strace -f -y -p $p -o /tmp/strace.txt 2>/dev/null &
  st=$!
  await "VIRTIO PHASE bench-end" $glog 240
  kill -INT $st; wait $st
  # One line per system call ("PID name(args) = ret"; a call another thread interrupted is
  # counted at its start). Kicks: the writes to an eventfd (the back end's kick); everything
  # else the relay does (the ioreq, its answer, the call eventfd, the MSI) is counted with them.
  awk '$2 ~ /^[a-z_0-9]+\(/ { name = $2; sub(/\(.*/, "", name); n[name]++; t++ }
       /write\([0-9]+<anon_inode:\[eventfd\]>/ { k++ }
       END { if (k > 0) printf "VIRTIO BENCH syscalls-per-kick: %.2f (%d system calls, %d kicks", t / k, t, k;
             else printf "VIRTIO BENCH syscalls-per-kick: none (%d system calls, no kick", t;
             for (c in n) printf "; %s %.2f per kick", c, (k > 0 ? n[c] / k : 0); print ")" }' /tmp/strace.txt
  head -n 40 /tmp/strace.txt | sed 's/^/strace: /'
fi
# The back end dies when the guest is ready for it, and comes back.
await "VIRTIO PHASE kill-backend" $glog 240
kill -KILL $b
wait $b 2>/dev/null
echo "== BACKEND KILLED"
if wait_for "the back end closed its connection; disconnected" /tmp/v.log; then
  echo "VIRTIO HOST CHECK the front end notices the back end's death: ok"
else
  echo "VIRTIO HOST CHECK the front end notices the back end's death: FAIL"
fi
sleep 3
RUST_LOG=info /vhost-device-rng --socket-path /tmp/rng.sock >/tmp/backend2.log 2>&1 &
b=$!
if wait_for "connected again" /tmp/v.log; then
  echo "VIRTIO HOST CHECK the front end reconnects to the restarted back end: ok"
else
  echo "VIRTIO HOST CHECK the front end reconnects to the restarted back end: FAIL"
fi
# The front end is killed when the guest is ready for it, and started again.
if await "VIRTIO PHASE kill-frontend" $glog 240; then
  kill -KILL $p
  wait $p 2>/dev/null
  echo "== FRONTEND KILLED"
  drain /tmp/v.log
  # vhost-device-scsi 0.1.0 serves one front end and exits: start it again. The others wait for
  # the next front end on a fresh socket.
  wait $sb 2>/dev/null
  RUST_LOG=info /vhost-device-scsi --socket-path /tmp/scsi.sock /tmp/disk.img >>/tmp/scsi-backend.log 2>&1 &
  sb=$!
  sleep 2
  # shellcheck disable=SC2086
  XEN_LOG=info serve /tmp/v2.log /virtio_attach $args
  if wait_for "took over IOREQ server" /tmp/v2.log; then
    echo "VIRTIO HOST CHECK the restarted front end takes over the IOREQ server and the devices: ok"
  else
    echo "VIRTIO HOST CHECK the restarted front end takes over the IOREQ server and the devices: FAIL"
  fi
fi
gone vlinux 240
# What the guest wrote is in the file.
echo "VIRTIO HOST DATA scsi-md5 $(dd if=/tmp/disk.img bs=4096 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "VIRTIO HOST DATA scsi-sector $(dd if=/tmp/disk.img bs=512 skip=200 count=1 2>/dev/null | head -c 16)"
stop virtio_attach $p VIRTIO
drain /tmp/v2.log
# The back ends wait for the next front end: stop them.
kill -TERM $b $cb $nc_pid $sb 2>/dev/null
wait $b
echo "== BACKEND EXIT $?"
sed 's/^/backend: /' /tmp/backend.log /tmp/backend2.log
sed 's/^/console-backend: /' /tmp/con-backend.log
sed 's/^/scsi-backend: /' /tmp/scsi-backend.log
tr -d '\r' </var/log/xen/guest-vlinux.log | grep -E '^VIRTIO |virtio|PCI' || echo "== no output from the guest"
reboot -f
INIT
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$out/virtio-initramfs-$rel.cpio"
  log="$out/virtio-pvh-$rel.log"
  boot_dom0 "$out/virtio-initramfs-$rel.cpio" plain
  FAIL_TAIL=80
  grep -E '^VIRTIO |^virtio_attach:|^strace: |^backend: |^console-backend: |^scsi-backend: |^== BACKEND|^(INFO|WARN|DEBUG): ' <<<"$L" | sort | uniq -c | sort -rn | head -60 || true
  boot_verdict
  grep -q "Xen version $rel\." <<<"$L" || fail "booted $(grep -m1 -o 'Xen version [^ ]*' <<<"$L"), want $rel"
  grep -q '^VIRTIO CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in the guest"
  grep -q '^VIRTIO HOST CHECK .*: FAIL' <<<"$L" && fail "failing virtio checks in dom0"
  h=$(grep -c '^VIRTIO HOST CHECK .*: ok' <<<"$L")
  [ "$h" = 4 ] || fail "$h dom0 virtio checks passed, want 4"
  # The file in dom0 holds what the guest wrote to the SCSI disk.
  g=$(sed -n 's/^VIRTIO DATA scsi-md5 \([0-9a-f]*\).*/\1/p' <<<"$L" | head -n1)
  d=$(sed -n 's/^VIRTIO HOST DATA scsi-md5 \([0-9a-f]*\).*/\1/p' <<<"$L" | head -n1)
  [ -n "$g" ] && [ "$g" = "$d" ] || fail "dom0's disk file holds md5 '$d', the guest wrote '$g'"
  grep -q '^VIRTIO HOST DATA scsi-sector GUEST-WROTE-THIS' <<<"$L" || fail "dom0's disk file lacks the guest's sector"
  h=$((h + 2))
  grep -q '^VIRTIO DONE' <<<"$L" || fail "the guest did not finish its checks"
  grep -q '== VIRTIO EXIT 0' <<<"$L" || fail "virtio_attach did not exit cleanly on SIGTERM"
  grep -q '^virtio_attach: stopped after [0-9]* requests' <<<"$L" || fail "virtio_attach did not report its teardown"
  n=$(grep -c '^VIRTIO CHECK .*: ok' <<<"$L")
  [ "$n" = 38 ] || fail "$n virtio checks passed, want 38"
  bench=$(grep -m1 '^VIRTIO BENCH syscalls-per-kick: [0-9]' <<<"$L") || fail "no system-call count per kick"
  echo "$bench"
  echo "ok   virtio-pci on real Xen $rel (Linux $kver dom0, Xen $rel's xl): Debian's Linux $KVER as a PVH guest (no QEMU) drives two virtio-rng devices, a console and a SCSI disk from dom0 (in-process; vhost-device-rng, -console and -scsi over vhost-user with Xen foreign mappings; the disk's file holds what the guest wrote) with its own modules; the rng's back end killed and restarted mid-run, the device reset by the guest and read again; the front end killed and restarted, taking over the IOREQ server and the devices from its saved state: $n guest and $h dom0 checks passed; $(grep -m1 -o 'stopped after [0-9]* requests ([0-9]* refused)' <<<"$L"); $ms ms of QEMU"
done
