#!/bin/sh
# The dom0 /init of the virtio scenarios (tests/real-xen/virtio-pvh.sh, virtio-hvm.sh): starts
# the back ends and virtio_attach for the guest that tests/real-xen/virtio-guest-init.sh checks,
# and plays its part in the guest's phases. /etc/virtio.env: MODE (pvh or hvm), GUEST (the
# domain's name), GLOG (the guest's console log), RAM (the guest's RAM ranges for
# virtio_attach). Results: "VIRTIO HOST CHECK <name>: ok|FAIL", "VIRTIO HOST DATA" and
# "VIRTIO BENCH" lines.
. /etc/dom0.sh
. /etc/virtio.env
# Next to QEMU: its own SCSI disk, for the benchmark.
[ "$MODE" = hvm ] && dd if=/dev/zero of=/tmp/qdisk.img bs=1048576 count=8 2>/dev/null
xl create -p /etc/xen/$GUEST.cfg
domid=$(xl domid $GUEST 2>/dev/null)
if [ -z "$domid" ]; then
  echo "== FAILED: xl create made no domain $GUEST"
  [ "$MODE" = hvm ] && sed 's/^/qemu-dm: /' /var/log/xen/qemu-dm-$GUEST.log
  reboot -f
fi
echo "== guest domain $domid"
# await PATTERN FILE SECONDS: until the file has the pattern; a line every 20 s meanwhile (the
# harness takes 300 s of silence for a hang), the guest's console on a timeout.
await() {
  local n=0
  until grep -q "$1" "$2" 2>/dev/null; do
    sleep 0.5; n=$((n+1))
    [ $((n % 40)) = 0 ] && echo "== still waiting for '$1' in $2 ($((n / 2)) s)"
    if [ $n -gt $(($3 * 2)) ]; then
      echo "== TIMEOUT waiting for '$1' in $2; the guest's console:"
      tr -d '\r' <$GLOG | tail -n 40
      return 1
    fi
  done
}
host_check() { # name ok-condition-result
  if [ "$2" = 0 ]; then echo "VIRTIO HOST CHECK $1: ok"; else echo "VIRTIO HOST CHECK $1: FAIL"; fi
}
sock() { n=0; until [ -S "$1" ]; do sleep 0.1; n=$((n+1)); [ $n -gt 300 ] && { echo "== no socket $1"; break; }; done; }
# The back end first (it listens), then the front end with the devices. (vhost-device-rng
# numbers its sockets: the first of --socket-path /tmp/rng.sock is rng.sock0.)
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
# The disk: 8 MiB, dom0's pattern at sector 100. vhost-device-scsi 0.1.0 serves one front-end
# connection and exits, so it runs as a user would run it, restarted whenever it exits (a
# firmware that used the disk, the driver's reset after it, a front end restarted).
dd if=/dev/zero of=/tmp/disk.img bs=1048576 count=8 2>/dev/null
printf 'HOST-WROTE-THIS.' | dd of=/tmp/disk.img bs=512 seek=100 conv=notrunc 2>/dev/null
(while :; do
  RUST_LOG=info /vhost-device-scsi --socket-path /tmp/scsi.sock /tmp/disk.img
  echo "== vhost-device-scsi exited with status $?; started again"
  sleep 0.2
done) >/tmp/scsi-backend.log 2>&1 &
sb=$!
sock /tmp/scsi.sock
args="--state /tmp/va.state $domid $RAM --rng 3 --vhost 4:rng:/tmp/rng.sock0 --vhost 5:console:/tmp/con.sock0 --vhost 6:scsi:/tmp/scsi.sock"
[ "$MODE" = pvh ] && args="--pvh $args"
# shellcheck disable=SC2086
XEN_LOG=info serve /tmp/v.log /virtio_attach $args
wait_for "virtio_attach: serving" /tmp/v.log
xl unpause $GUEST
await GUEST-SAYS-hello-dom0 /tmp/from-guest 600
grep -q GUEST-SAYS-hello-dom0 /tmp/from-guest
host_check "console: the guest's line arrives in dom0" $?
# The queues' interrupts: the kernel's irqfd is tried first; Debian's kernel has none (ENOTTY
# on 6.1) or EOPNOTSUPP (6.12), so virtio_attach says so once per vhost-user device and relays
# them itself.
wait_for "interrupts relayed by this process (IOCTL_PRIVCMD_IRQFD: " /tmp/v.log
host_check "interrupts: no privcmd irqfd in this kernel, relayed by virtio_attach" $?
echo "DOM0-SAYS-hello-guest" >&6
# System calls per kick while the guest reads from the vhost-user rng (not where the machine
# counts instructions: strace would be in the figures).
if [ "$MODE" = pvh ] && await "VIRTIO PHASE bench-start" $GLOG 240; then
  strace -f -y -p $p -o /tmp/strace.txt 2>/dev/null &
  st=$!
  await "VIRTIO PHASE bench-end" $GLOG 240
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
await "VIRTIO PHASE kill-backend" $GLOG 900
kill -KILL $b
wait $b 2>/dev/null
echo "== BACKEND KILLED"
wait_for "the back end closed its connection; disconnected" /tmp/v.log
host_check "the front end notices the back end's death" $?
sleep 3
RUST_LOG=info /vhost-device-rng --socket-path /tmp/rng.sock >/tmp/backend2.log 2>&1 &
b=$!
wait_for "connected again" /tmp/v.log
host_check "the front end reconnects to the restarted back end" $?
# The front end is killed when the guest is ready for it, and started again.
if await "VIRTIO PHASE kill-frontend" $GLOG 240; then
  kill -KILL $p
  wait $p 2>/dev/null
  echo "== FRONTEND KILLED"
  drain /tmp/v.log
  sleep 2
  # shellcheck disable=SC2086
  XEN_LOG=info serve /tmp/v2.log /virtio_attach $args
  wait_for "took over IOREQ server" /tmp/v2.log
  host_check "the restarted front end takes over the IOREQ server and the devices" $?
fi
gone $GUEST 240
# What the guest wrote is in the file.
echo "VIRTIO HOST DATA scsi-md5 $(dd if=/tmp/disk.img bs=4096 skip=128 count=16 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "VIRTIO HOST DATA scsi-sector $(dd if=/tmp/disk.img bs=512 skip=200 count=1 2>/dev/null | head -c 16)"
stop virtio_attach $p VIRTIO
drain /tmp/v2.log
# The back ends wait for the next front end: stop them (the disk's restarter first).
kill -TERM $sb 2>/dev/null
wait $sb
kill -TERM $b $cb $nc_pid $(pidof vhost-device-scsi) 2>/dev/null
wait $b
echo "== BACKEND EXIT $?"
sed 's/^/backend: /' /tmp/backend.log /tmp/backend2.log
sed 's/^/console-backend: /' /tmp/con-backend.log
sed 's/^/scsi-backend: /' /tmp/scsi-backend.log
[ "$MODE" = hvm ] && sed 's/^/qemu-dm: /' /var/log/xen/qemu-dm-$GUEST.log | grep -v 'Locked DMA mapping while invalidating'
tr -d '\r' <$GLOG | grep -E '^VIRTIO |virtio|PCI' || echo "== no output from the guest"
reboot -f
