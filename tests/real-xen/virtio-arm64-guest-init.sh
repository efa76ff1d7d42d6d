#!/bin/sh
# /init of the arm64 guest with a virtio disk (tests/real-xen/arm64-linux.sh): Debian's arm64
# kernel finds the virtio-mmio node libxl put in its device tree (virtio_mmio and virtio_blk are
# modules there), and the disk virtio_mmio_attach serves from dom0 is /dev/vda. It reads dom0's
# pattern, writes its own sector and 64 KiB, reads them back, and says what it saw on hvc0 (dom0
# reads the console log): one "VIRTIO ARM64 CHECK <name>: ok|FAIL (detail)" line per check.
# Then the rng of the partial device tree (vhost-device-rng in dom0), the benchmark ("VIRTIO
# ARM64 BENCH <what> <who> <virtio-bench's line>": the machine runs with -icount shift=0, so
# CLOCK_MONOTONIC counts instructions), and the rng's back end killed and restarted between
# reads: "VIRTIO ARM64 PHASE kill-backend" tells dom0 when; dom0 answers in sector 301 of the
# disk once the front end is connected to the new back end.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "ARM64 GUEST UP"
check() { # name status detail
  if [ "$2" = 0 ]; then echo "VIRTIO ARM64 CHECK $1: ok ($3)"; else echo "VIRTIO ARM64 CHECK $1: FAIL ($3)"; fi
}
for m in virtio_mmio virtio_blk; do insmod /lib/modules/$m.ko; done
n=0
until [ -b /dev/vda ] || [ $n -gt 100 ]; do sleep 0.1; n=$((n + 1)); done
[ -b /dev/vda ]
check "the virtio-mmio disk appears as /dev/vda" $? "$(cat /sys/block/vda/size 2>/dev/null) sectors; $(grep -m1 -o 'virtio,mmio[^ ]*' /proc/device-tree/passthrough/*/compatible /proc/device-tree/*/compatible 2>/dev/null | head -n1)"
got=$(dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | head -c 16)
[ "$got" = "HOST-WROTE-THIS." ]
check "reads what dom0 wrote into the disk" $? "got '$got'"
# 64 KiB at 512 KiB, written through, read back past the page cache.
dd if=/dev/urandom of=/tmp/p bs=4096 count=16 2>/dev/null
want=$(md5sum </tmp/p | cut -d' ' -f1)
dd if=/tmp/p of=/dev/vda bs=4096 seek=128 conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
got=$(dd if=/dev/vda bs=4096 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$got" = "$want" ]
check "64 KiB written and read back" $? "md5 $got, wrote $want"
echo "VIRTIO ARM64 DATA md5 $want"
printf 'GUEST-WROTE-THIS' | dd of=/dev/vda bs=512 seek=200 conv=fsync 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches
got=$(dd if=/dev/vda bs=512 skip=200 count=1 2>/dev/null | head -c 16)
[ "$got" = "GUEST-WROTE-THIS" ]
check "a sector written and read back" $? "got '$got'"
irqs=$(awk '/virtio/ { n += $2 } END { print n + 0 }' /proc/interrupts)
[ "$irqs" -gt 0 ]
check "the disk's interrupts arrive (XEN_DMOP_set_irq_level)" $? "$irqs: $(grep -m1 virtio /proc/interrupts | tr -s ' ')"
# The rng of the partial device tree, served by vhost-device-rng in dom0, on the disk's SPI.
insmod /lib/modules/virtio-rng.ko
n=0
until grep -q virtio_rng /sys/class/misc/hw_random/rng_available 2>/dev/null || [ $n -gt 100 ]; do sleep 0.1; n=$((n + 1)); done
grep -q virtio_rng /sys/class/misc/hw_random/rng_available
check "the partial device tree's rng appears (vhost-device-rng, SPI 33 shared)" $? "$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null); $(grep -c . /proc/device-tree/passthrough/virtio@2000200/compatible 2>/dev/null) node"
a=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | md5sum | cut -d' ' -f1)
b=$(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | md5sum | cut -d' ' -f1)
nul=$(printf '' | md5sum | cut -d' ' -f1)
[ -n "$a" ] && [ "$a" != "$b" ] && [ "$a" != "$nul" ] && [ "$b" != "$nul" ]
check "two reads of /dev/hwrng differ" $? "$a vs $b"
# Instructions per operation, the whole machine's (Xen, dom0's kernel, virtio_mmio_attach or
# the back end, this guest): per rng request (a 64-byte read of /dev/hwrng, vhost-device-rng)
# and per 4 KiB read of the disk (O_DIRECT, so each reaches the device: the in-process
# virtio-blk of virtio_mmio_attach).
for b in rng:vhost-user disk:in-process; do
  what=${b%%:*} who=${b#*:}
  if [ "$what" = rng ]; then
    r=$(timeout 600 virtio-bench /dev/hwrng 64 512 2>&1)
  else
    r=$(timeout 600 virtio-bench /dev/vda 4096 512 direct 2>&1)
  fi
  case "$r" in ops=*) ok=0 ;; *) ok=1 ;; esac
  check "bench: $what ($who)" $ok "$r"
  echo "VIRTIO ARM64 BENCH $what $who $r"
done
# The rng's back end dies between reads (dom0 kills vhost-device-rng with SIGKILL when it sees
# the phase line) and comes back, as on x86 (tests/real-xen/virtio-guest-init.sh): the front
# end sets NEEDS_RESET when it notices and reconnects to the restarted back end; the driver
# resets the device (what the spec asks of a driver that sees NEEDS_RESET: here an unbind and
# bind of the virtio-mmio platform device) and reads again. (The front end also resumes the
# queue where the driver left it, but vhost-device-rng 0.1.0 cannot continue a ring from a
# used index other than 0, which the front end notices at its first use: a reset either way.)
h=/sys/class/misc/hw_random
v=""
for d in /sys/bus/virtio/devices/*; do [ "$(cat "$d/device" 2>/dev/null)" = 0x0004 ] && v=$d; done
pdir=$(dirname "$(readlink -f "$v")")
pdev=${pdir##*/}
echo "VIRTIO ARM64 PHASE kill-backend"
seen=""; n=0
until [ "$(dd if=/dev/vda bs=512 skip=301 count=1 2>/dev/null | head -c 9)" = RESTARTED ] || [ $n -gt 600 ]; do
  s=$(cat "$v/status" 2>/dev/null)
  [ $((${s:-0} & 0x40)) != 0 ] && [ -z "$seen" ] && seen="$s after $n polls"
  echo 3 >/proc/sys/vm/drop_caches
  sleep 0.2
  n=$((n + 1))
done
[ -n "$seen" ]
check "the rng reports NEEDS_RESET once its back end is gone" $? "${v##*/} status ${seen:-never NEEDS_RESET}; dom0's restart seen after $n polls"
echo "$pdev" >/sys/bus/platform/drivers/virtio-mmio/unbind
echo "$pdev" >/sys/bus/platform/drivers/virtio-mmio/bind
for d in "$pdir"/virtio*; do v=$d; done
r=$(tr ' ' '\n' <$h/rng_available | grep '^virtio_rng' | tail -n1)
echo "$r" >$h/rng_current
a=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
b=$(timeout 60 dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
s=$(cat "$v/status" 2>/dev/null)
[ ${#a} = 128 ] && [ ${#b} = 128 ] && [ "$a" != "$b" ] && [ $((${s:-0} & 0x4f)) = 15 ]
check "the rng reads again through the restarted back end after a reset" $? "$pdev reset: ${v##*/} status $s, $(cat $h/rng_current); ${#a} and ${#b} hex digits, $(echo "$a" | head -c 16)... vs $(echo "$b" | head -c 16)..."
echo "VIRTIO ARM64 DONE"
# Dom0 stops what maps this guest's RAM by hand (the rng's front end and back end) before the
# guest powers off: a domain whose pages dom0 still maps cannot be destroyed (xl's destroy spins
# in dom0's kernel meanwhile). Dom0 says so in sector 300 of the disk, which is still served.
n=0
until [ "$(dd if=/dev/vda bs=512 skip=300 count=1 2>/dev/null | head -c 8)" = "RELEASED" ] || [ $n -gt 300 ]; do
  echo 3 >/proc/sys/vm/drop_caches
  sleep 0.2
  n=$((n + 1))
done
poweroff -f
