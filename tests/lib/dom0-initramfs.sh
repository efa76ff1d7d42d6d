# Sourced: a Linux dom0 initramfs for one Xen release, with that release's own user space:
# busybox, the dom0 kernel's Xen modules (release_dom0 sets $mods), xl, xenstored, xenconsoled,
# xen-init-dom0, xenstore-read and strace with their libraries: the machine's for 4.17 (its
# declared packages), the release's Debian suite's otherwise (xen_release_userland), and
# /etc/dom0.sh, which a scenario's /init sources: it mounts, loads the modules, starts xenstored
# and xenconsoled, and defines the helpers that start, watch and stop servers.
# Needs tests/lib/xen-releases.sh.

# The path of a file of root ROOT on this machine, its symlinks resolved inside ROOT (an older
# suite's libc6 has absolute ones, such as /lib64/ld-linux-x86-64.so.2).
in_root() { # root path
  local p=$2 t n=0
  while [ -L "$1$p" ] && [ $n -lt 40 ]; do
    t=$(readlink "$1$p")
    case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
    n=$((n + 1))
  done
  echo "$1$p"
}

# The architecture of the dom0 user space dom0_initramfs builds: amd64, or arm64 (Debian's arm64
# packages of the release's suite, which this machine cannot run: see foreign_libs).
DOM0_ARCH=${DOM0_ARCH:-amd64}
dom0_triple() {
  case $DOM0_ARCH in
    amd64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    *) echo "FAIL: no dom0 user space is known for $DOM0_ARCH" >&2; return 1 ;;
  esac
}

# foreign_libs PATH: the program interpreter and the libraries a program of $root loads,
# recursively, as paths in $root, found the way the root's own loader finds them (its multiarch
# and plain library directories) from the ELF headers (readelf reads every architecture); for a
# user space of another architecture, whose loader cannot run here. A library the root lacks is
# printed as "MISSING name".
foreign_libs() {
  local todo=("$1") seen=" " f lib d found triple
  triple=$(dom0_triple) || return 1
  while [ ${#todo[@]} -gt 0 ]; do
    f=$(in_root "$root" "${todo[0]}"); todo=("${todo[@]:1}")
    readelf -lW "$f" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p'
    for lib in $(readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
      case $seen in *" $lib "*) continue ;; esac
      seen+="$lib "
      found=
      for d in "/lib/$triple" "/usr/lib/$triple" /lib /usr/lib; do
        [ -e "$(in_root "$root" "$d/$lib")" ] && { found=$d/$lib; break; }
      done
      if [ -n "$found" ]; then echo "$found"; todo+=("$found"); else echo "MISSING $lib"; fi
    done
  done | sort -u
}

# copy_bin PATH [NAME]: a program of the user space in $root into the initramfs at the same path,
# with the libraries it loads, as that root's own dynamic loader resolves them (chroot, so the
# machine's libraries never stand in for the release's; foreign_libs for another architecture);
# NAME: a link in /bin.
copy_bin() {
  local list lib
  mkdir -p "$ir$(dirname "$1")"
  cp "$(in_root "$root" "$1")" "$ir$1"
  if [ "$DOM0_ARCH" = amd64 ]; then
    list=$(chroot "${root:-/}" /lib64/ld-linux-x86-64.so.2 --list "$1" 2>&1) ||
      { echo "FAIL: $1 of Xen $rel's user space ($root) cannot load: $list"; exit 1; }
    list=$(awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' <<<"$list")
  else
    list=$(foreign_libs "$1")
    ! grep -q '^MISSING' <<<"$list" ||
      { echo "FAIL: $1 of Xen $rel's $DOM0_ARCH user space ($root) needs libraries it lacks: $(sed -n 's/^MISSING //p' <<<"$list" | tr '\n' ' ')"; exit 1; }
  fi
  for lib in $list; do
    [ -e "$ir$lib" ] || { mkdir -p "$ir$(dirname "$lib")"; cp "$(in_root "$root" "$lib")" "$ir$lib"; }
  done
  [ -z "${2:-}" ] || ln -sf "$1" "$ir/bin/$2"
}

# dom0_initramfs RELEASE DIR: the initramfs tree in DIR (made anew); sets rel, ir and root (the
# user space's root, "" for the machine's), which release_c builds against.
dom0_initramfs() {
  rel=$1 ir=$2
  rm -rf "$ir"
  mkdir -p "$ir"/{bin,dev,proc,sys,tmp,run,etc/xen,var/log/xen,var/lib/xen,lib/modules}
  ln -s ../run "$ir/var/run"
  for a in sh mount insmod mkdir sleep cat grep kill reboot echo pidof tail awk tr timeout sed tee; do ln -s busybox "$ir/bin/$a"; done
  for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do add_module "$m" "$ir/lib/modules"; done
  root=""
  if [ "$rel" != 4.17 ] || [ "$DOM0_ARCH" != amd64 ]; then
    root=$(SUITE_ARCH=$DOM0_ARCH xen_release_userland "$rel") ||
      { echo "FAIL: Xen $rel's $DOM0_ARCH dom0 user space could not be fetched"; exit 1; }
  fi
  # The machine's busybox for amd64, the suite's busybox-static otherwise.
  if [ "$DOM0_ARCH" = amd64 ]; then cp /bin/busybox "$ir/bin/busybox"; else cp "$(in_root "$root" /bin/busybox)" "$ir/bin/busybox"; fi
  local X=/usr/lib/xen-$rel/bin gcc_s triple
  triple=$(dom0_triple) || exit 1
  copy_bin $X/xl xl
  copy_bin $X/xenstored xenstored
  copy_bin $X/xenconsoled xenconsoled
  copy_bin $X/xen-init-dom0 xen-init-dom0
  copy_bin /usr/bin/xenstore-read xenstore-read
  # One multi-call program: it acts by the name it is called with.
  ln -s xenstore-read "$ir/usr/bin/xenstore-watch"
  ln -s /usr/bin/xenstore-watch "$ir/bin/xenstore-watch"
  copy_bin /usr/bin/strace strace
  gcc_s=$(find "$root/lib/$triple/" "$root/usr/lib/$triple/" -name 'libgcc_s.so.1' | head -1)
  [ -n "$gcc_s" ] || { echo "FAIL: no libgcc_s.so.1 in Xen $rel's user space"; exit 1; }
  cp "$gcc_s" "$ir/lib/$triple/"
  : >"$ir/etc/xen/xl.conf"
  cp tests/lib/dom0-helpers.sh "$ir/etc/dom0-helpers.sh"
  cat >"$ir/etc/dom0.sh" <<'DOM0'
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/lock
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do insmod /lib/modules/$m.ko; done
mount -t xenfs xenfs /proc/xen
XENSTORED_ROOTDIR=/run/xenstored xenstored --pid-file /run/xenstored.pid
n=0; until xenstore-read -s / >/dev/null 2>&1; do
  sleep 0.1; n=$((n+1)); [ $n -gt 300 ] && { echo "== TIMEOUT waiting for xenstored"; break; }
done
xen-init-dom0
xenconsoled --log=guest --log-dir=/var/log/xen &
. /etc/dom0-helpers.sh
DOM0
}

# pvh_guest_cfg NAME CMDLINE: the xl config of the freestanding PVH test guest.
pvh_guest_cfg() {
  cat <<CFG
name = "$1"
type = "pvh"
kernel = "/guest.elf"
cmdline = "$2"
memory = 16
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}

# release_c OUT SOURCE LIBS...: a C program of the harness built on the release's headers and
# static libraries (from $root, as dom0_initramfs set it), static-pie like the Rust servers: it
# needs no loader in any dom0, and it loads above 4 GiB, where the instruction-count plugin
# (tests/real-xen/insn-windows.c) counts user space (below is the 32-bit guest).
release_c() {
  local out=$1 src=$2; shift 2
  gcc -O2 -Wall -Wextra -Werror -static-pie -I"$root/usr/include" -o "$out" "$src" \
    -L"$root/usr/lib/x86_64-linux-gnu" "$@" || { echo "FAIL: $src does not build on Xen $rel's libxen-dev"; exit 1; }
}

# build_ioreq_programs OUT: the freestanding PVH test guest (32-bit, Debian's rustc-web for i686;
# needs tests/lib/debian-rust.sh), the static regbank server (the file linux-dom0.sh runs too)
# and the instruction-count plugin; sets guest, server and marks (the addresses of the two rdtsc
# around the guest's timed loop, which delimit the plugin's windows).
build_ioreq_programs() {
  (cd tests/xen-pvh-guest && CARGO_TARGET_I686_UNKNOWN_LINUX_GNU_LINKER=i686-linux-gnu-gcc \
    RUSTFLAGS="-C relocation-model=static" debian_cargo build --locked -q --release \
    --target i686-unknown-linux-gnu --target-dir "$1/pvh-guest")
  guest="$1/pvh-guest/i686-unknown-linux-gnu/release/xen-pvh-guest-test"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked -q --profile server -p xen \
    --features std --example regbank --target x86_64-unknown-linux-gnu --target-dir "$1/static"
  server="$1/static/x86_64-unknown-linux-gnu/server/examples/regbank"
  gcc -O2 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -o "$1/insn-windows.so" \
    tests/real-xen/insn-windows.c
  mapfile -t marks < <(objdump -d "$guest" | awk '/<.*timed.*>:$/ { f = 1; next } /^$/ { f = 0 }
    f && /\trdtsc/ { sub(":", "", $1); print "0x" $1 }')
  [ "${#marks[@]}" = 2 ] || { echo "FAIL: expected 2 rdtsc in the guest's timed(), found ${#marks[@]}"; exit 1; }
}

# boot_dom0 CPIO MODE: Xen ($xen) with the dom0 kernel ($vmlinuz) and CPIO under QEMU, output in
# $log; sets rc, ms and L (the log without carriage returns). MODE serve runs with -icount and
# the plugin (figures in instructions: the guest's TSC then counts the whole machine's), MODE
# icount with -icount alone; other modes need neither. QEMU_MEM: the machine's MiB (1024).
boot_dom0() {
  local timed=()
  case $2 in
    serve) timed=(-icount shift=0,sleep=off -plugin "$out/insn-windows.so,start=${marks[0]},end=${marks[1]}") ;;
    icount) timed=(-icount shift=0,sleep=off) ;;
  esac
  start=$(date +%s%N)
  rc=0
  # Bounded by progress, not wall time (tests/lib/real-xen.sh): with -icount the boot takes
  # 200-310 s here, and longer on a loaded host.
  qemu_bounded "$log" qemu-system-x86_64 -machine q35 -cpu max,-smap,-rdtscp,-xsave,-avx,-avx2 -m "${QEMU_MEM:-1024}" -smp 1 \
    "${timed[@]}" -nographic -no-reboot -kernel "$xen" \
    -append 'console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=512M dom0_max_vcpus=1' \
    -initrd "$vmlinuz console=hvc0 earlyprintk=xen loglevel=4 rdinit=/init,$1" || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  L=$(tr -d '\r' <"$log")
}
