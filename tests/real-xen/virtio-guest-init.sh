#!/bin/sh
# The /init of the virtio scenarios' Linux guest (tests/real-xen/virtio-pvh.sh, virtio-hvm.sh):
# Debian's kernel and its own modules, busybox. /etc/virtio.env says how the guest was made:
# MODE=pvh (no device model: virtio_attach --pvh answers the host bridge) or MODE=hvm (QEMU is
# the primary device model and adds its own virtio-rng-pci at 00:07.0 and virtio-scsi-pci at
# 00:08.0, which the benchmark compares with ours). Ours, served from dom0 by virtio_attach:
# 00:03.0 an in-process rng; 00:04.0 an rng, 00:05.0 a console and 00:06.0 a SCSI disk through
# vhost-device-rng, -console and -scsi.
# One line per check: "VIRTIO CHECK <name>: ok|FAIL (detail)"; "VIRTIO PHASE <what>" lines pace
# dom0 (tests/real-xen/virtio-dom0-init.sh), which kills and restarts the back end and the front
# end when the guest is ready for it; "VIRTIO BENCH" lines carry the figures.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/virtio.env
# A line of its own for the first check: the firmware leaves the serial line mid-line.
echo
check() { # name ok-condition-result detail
  if [ "$2" = 0 ]; then echo "VIRTIO CHECK $1: ok ($3)"; else echo "VIRTIO CHECK $1: FAIL ($3)"; fi
}
# Each function: slot, the modern virtio device id, what it is, who serves it.
funcs="03:1044:rng:ours 04:1044:rng:ours 05:1043:console:ours 06:1048:scsi:ours"
[ "$MODE" = hvm ] && funcs="$funcs 07:1044:rng:qemu 08:1048:scsi:qemu"
rngs=$(echo "$funcs" | tr ' ' '\n' | grep -c ':rng:')
ls /sys/bus/pci/devices | tr '\n' ' ' >/tmp/bus
for f in $funcs; do
  slot=${f%%:*}; rest=${f#*:}; want=${rest%%:*}; rest=${rest#*:}; kind=${rest%%:*}
  d=/sys/bus/pci/devices/0000:00:$slot.0
  [ -d $d ]; check "00:$slot.0 enumerates" $? "$(cat /tmp/bus)"
  id="$(cat $d/vendor 2>/dev/null):$(cat $d/device 2>/dev/null)"
  [ "$id" = 0x1af4:0x$want ]; check "00:$slot.0 is a modern virtio-$kind" $? "$id"
done
# The hvc consoles that exist (open succeeds; the /dev/hvc* nodes are all there from the start):
# the one virtio_console adds is the console device's.
hvcs() { for c in $(ls /dev | grep '^hvc'); do (exec 7<>/dev/$c) 2>/dev/null && echo $c; done; }
hvcs >/tmp/hvc-before
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || echo "VIRTIO CHECK insmod $m: FAIL"
done
for f in $funcs; do
  slot=${f%%:*}
  d=/sys/bus/pci/devices/0000:00:$slot.0
  [ -e $d/driver ] && [ "$(basename "$(readlink $d/driver)")" = virtio-pci ]
  check "virtio_pci binds 00:$slot.0" $? "$(readlink $d/driver)"
done
# The hw_random name of the rng at a slot before any reset: virtio-rng numbers its devices
# ("virtio_rng.N") in the order they probe, which is the slots' order.
rng_of() { # slot
  i=0
  for s in $(echo "$funcs" | tr ' ' '\n' | grep ':rng:' | cut -d: -f1); do
    [ "$s" = "$1" ] && { echo "virtio_rng.$i"; return; }
    i=$((i + 1))
  done
}
h=/sys/class/misc/hw_random
avail=$(cat $h/rng_available 2>/dev/null)
n=$(echo "$avail" | tr ' ' '\n' | grep -c '^virtio_rng')
[ "$n" = "$rngs" ]; check "all $rngs rng devices are the kernel's rngs" $? "rng_available=$avail"
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
[ "$u" = $((rngs * 2)) ]; check "the rng devices' bytes all differ" $? "$u distinct of $((rngs * 2))"
irqs=$(grep -i virtio /proc/interrupts | tr -s ' ' | tr '\n' ';')
for slot in 03 04; do
  v=$(basename /sys/bus/pci/devices/0000:00:$slot.0/virtio*)
  q=$(grep "$v-input" /proc/interrupts | tr -s ' ')
  # " N: COUNT <chip> ... virtioK-input": the queue's own MSI-X vector fired (the chip is
  # PCI-MSI in a PVH guest, xen-pirq -msi-x in an HVM one, where Linux has Xen bind MSIs to
  # event channels).
  n=$(echo "$q" | cut -d' ' -f3)
  case "$q" in *PCI-MSI*|*-msi-x*) [ "${n:-0}" -gt 0 ] ;; *) false ;; esac
  check "00:$slot.0's queue interrupts by MSI-X (XEN_DMOP_inject_msi)" $? "$irqs"
done
# The console (vhost-device-console, its TCP side in dom0): the hvc that virtio_console added
# (Xen's own console is hvc0 when the guest has one). One line each way.
con=""; n=0
while [ -z "$con" ] && [ $n -le 150 ]; do
  for c in $(hvcs); do grep -qx "$c" /tmp/hvc-before || con=/dev/$c; done
  [ -n "$con" ] || { sleep 0.2; n=$((n+1)); }
done
[ -n "$con" ]; check "00:05.0's console port is a new hvc" $? "${con:-none}; before: $(cat /tmp/hvc-before | tr '\n' ' ')"
exec 5<>${con:-/dev/null}
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
# The disk of a slot: the sd* whose device path goes through it.
disk_of() { # slot
  for b in /sys/block/sd*; do
    case "$(readlink -f $b)" in */0000:00:$1.0/*) basename $b; return ;; esac
  done
}
# The SCSI disk (vhost-device-scsi on an 8 MiB file in dom0): dom0 wrote a pattern at sector
# 100; the guest writes 64 KiB at sector 1024 and a line at sector 200, drops its caches and
# reads them back; dom0 checks its file holds them (the md5 printed here).
n=0; until [ -n "$(disk_of 06)" ] || [ $n -gt 150 ]; do sleep 0.2; n=$((n+1)); done
sd=$(disk_of 06)
[ -n "$sd" ]; check "00:06.0's disk appears" $? "${sd:-none}; $(ls /sys/block | tr '\n' ' ')"
got=$(dd if=/dev/$sd bs=512 skip=100 count=1 2>/dev/null | head -c 16)
[ "$got" = "HOST-WROTE-THIS." ]; check "scsi: reads what dom0 wrote into the file" $? "got '$got'"
dd if=/dev/urandom of=/tmp/pattern bs=4096 count=16 2>/dev/null
dd if=/tmp/pattern of=/dev/$sd bs=4096 seek=128 conv=fsync 2>/dev/null
printf 'GUEST-WROTE-THIS' | dd of=/dev/$sd bs=512 seek=200 conv=sync,fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
want=$(md5sum </tmp/pattern | cut -d' ' -f1)
back=$(dd if=/dev/$sd bs=4096 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$back" = "$want" ]; check "scsi: 64 KiB written and read back" $? "md5 $back, wrote $want"
echo "VIRTIO DATA scsi-md5 $want"
line=$(dd if=/dev/$sd bs=512 skip=200 count=1 2>/dev/null | head -c 16)
[ "$line" = "GUEST-WROTE-THIS" ]; check "scsi: a sector written and read back" $? "got '$line'"
if [ "$MODE" = pvh ]; then
  # The relay's cost: dom0 counts virtio_attach's system calls (strace) while the guest reads
  # 256 times 64 bytes from the vhost-user rng (00:04.0).
  echo "$(rng_of 04)" >$h/rng_current
  echo "VIRTIO PHASE bench-start"
  sleep 8
  n=$(dd if=/dev/hwrng bs=64 count=256 2>/dev/null | wc -c)
  echo "VIRTIO PHASE bench-end"
  [ "$n" = 16384 ]; check "bench: 256 reads of 64 bytes from $(cat $h/rng_current)" $? "$n bytes"
  sleep 3
else
  # Side by side with QEMU's own devices, same guest, same boot (the machine runs with -icount:
  # its clock counts instructions): per rng request (64 bytes) and per 4 KiB read (O_DIRECT).
  qsd=$(disk_of 08)
  [ -n "$qsd" ]; check "QEMU's 00:08.0 disk appears" $? "${qsd:-none}"
  for b in 03:rng:in-process 04:rng:vhost-user 07:rng:qemu 06:disk:vhost-user 08:disk:qemu; do
    slot=${b%%:*}; rest=${b#*:}; what=${rest%%:*}; who=${rest#*:}
    if [ $what = rng ]; then
      echo "$(rng_of $slot)" >$h/rng_current
      r=$(timeout 600 virtio-bench /dev/hwrng 64 512)
    else
      r=$(timeout 600 virtio-bench /dev/$(disk_of $slot) 4096 512 direct)
    fi
    case "$r" in ops=*) ok=0 ;; *) ok=1 ;; esac
    check "bench: $what at 00:$slot.0 ($who)" $ok "$r"
    echo "VIRTIO BENCH $what $who 00:$slot.0 $r"
  done
fi
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
echo 1 >/sys/block/$sd/device/delete
n=0; while [ -e /sys/block/$sd ] && [ $n -lt 100 ]; do sleep 0.2; n=$((n+1)); done
[ ! -e /sys/block/$sd ]; check "the SCSI disk let go of before the front end's restart" $? "$(ls /sys/block | tr '\n' ' ')"
# The kernel's hw_random thread reads from the current rng on its own: make it the in-process
# one, which continues its ring, so that nothing waits on 00:04.0 meanwhile.
echo "$(rng_of 03)" >$h/rng_current
echo "VIRTIO PHASE kill-frontend"
sleep 30
for f in 03 05; do
  v=$(basename /sys/bus/pci/devices/0000:00:$f.0/virtio*)
  s=$(cat /sys/bus/virtio/devices/$v/status)
  [ "$((s & 0x4f))" = 15 ]; check "00:$f.0 carries on after the front end's restart" $? "$v status $s"
done
a=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ ${#a} = 128 ]; check "00:03.0 reads after the front end's restart" $? "${#a} hex digits"
# 00:04.0 carries on too unless a request was in flight when the front end died: then
# vhost-device-rng 0.1.0 cannot continue the ring, and the device reports NEEDS_RESET (what
# the virtio spec asks). Either way a reset brings it back.
v=$(basename /sys/bus/pci/devices/0000:00:04.0/virtio*)
s=$(cat /sys/bus/virtio/devices/$v/status)
case $((s & 0x4f)) in
  15) how="carried on" ;; 79) how="reports NEEDS_RESET" ;; *) how="" ;;
esac
[ -n "$how" ]; check "00:04.0 after the front end's restart: carries on or reports NEEDS_RESET" $? "$v status $s: ${how:-neither}"
echo 0000:00:04.0 >/sys/bus/pci/drivers/virtio-pci/unbind
others=$(cat $h/rng_available | tr ' ' '\n' | grep '^virtio_rng')
echo 0000:00:04.0 >/sys/bus/pci/drivers/virtio-pci/bind
r=""
for x in $(cat $h/rng_available | tr ' ' '\n' | grep '^virtio_rng'); do
  case " $(echo $others) " in *" $x "*) ;; *) r=$x ;; esac
done
echo "$r" >$h/rng_current
a=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
[ ${#a} = 128 ]; check "00:04.0 ($r) reads after its reset" $? "${#a} hex digits"
echo "$(rng_of 03)" >$h/rng_current
echo "VIRTIO DONE"
poweroff -f
