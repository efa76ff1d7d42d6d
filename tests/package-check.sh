#!/usr/bin/env bash
# Every Debian file the test stages use comes from a declared package (tests/lib/packages.sh) or
# from what those packages Depend on, so a fresh machine that installs only the declared set with
# --no-install-recommends has it. A file that only a Recommends, a hand install or an earlier run
# put here fails, naming the file, its package and the stage. Run by tests/run.sh after
# ensure_packages and before the first stage; it needs xen-abi-gen built (debug, in
# CARGO_TARGET_DIR or target/).
#
# What the stages use: the headers every C probe compile reads (xen-abi-gen c-probe
# --headers-used), the headers and link inputs of the tests' C programs (gcc -M,
# -print-file-name), the commands the scripts run, the hypervisor and the dom0 tools copied into
# initramfs images with the libraries ldd names for them.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/packages.sh
. tests/lib/toolchain.sh
. tests/lib/debian-rust.sh
# shellcheck source=tests/lib/xen-releases.sh
. tests/lib/xen-releases.sh
# The MSRV check's toolchain (Debian 12's rustc-web and cargo-web 1.85), then the cross checks'.
ensure_msrv_rust >/dev/null
MSRV_RUSTC=$DEBIAN_RUSTC MSRV_RUST_LD=$DEBIAN_RUST_LD
ensure_debian_rust >/dev/null

declared="$TEST_PACKAGES $DEBIAN_RUST_PACKAGES"
if toolchain_from_debian; then
  declared+=" $DEBIAN_TOOLCHAIN_PACKAGES"
fi
# PACKAGE_CHECK_OMIT=PKG: check as if PKG were not declared (tests/run.sh proves the check fails).
if [ -n "${PACKAGE_CHECK_OMIT:-}" ]; then
  declared=$(tr ' ' '\n' <<<"$declared" | grep -vxF "$PACKAGE_CHECK_OMIT" | tr '\n' ' ')
fi
fail=0
for p in $declared; do
  package_installed "$p" || { echo "FAIL: declared package $p is not installed"; fail=1; }
done

# The packages a fresh machine would have: the declared ones, the base system (Essential and
# Priority required, which even debootstrap --variant=minbase installs) and, recursively, their
# Depends and Pre-Depends (an alternative "a | b" is the first one installed; a virtual package
# is its installed provider). Recommends and Suggests are not followed.
closure=$(dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\t${Essential}\t${Priority}\t${Provides}\t${Pre-Depends}, ${Depends}\n' |
  awk -F'\t' -v roots="$declared" '
    function clean(s) { gsub(/\([^)]*\)|\[[^]]*\]|<[^>]*>|:[a-z0-9]+/, "", s); gsub(/[ \t]/, "", s); return s }
    $2 == "ii " {
      inst[$1] = 1; dep[$1] = $6
      if ($3 == "yes" || $4 == "required") base[$1] = 1
      n = split($5, pv, ",")
      for (i = 1; i <= n; i++) { v = clean(pv[i]); if (v != "" && !(v in prov)) prov[v] = $1 }
    }
    function add(p) { if (!(p in in_closure)) { in_closure[p] = 1; queue[++tail] = p } }
    function pick(group,   n, alt, i, a) {
      n = split(group, alt, "|")
      for (i = 1; i <= n; i++) { a = clean(alt[i]); if (a in inst) return a }
      for (i = 1; i <= n; i++) { a = clean(alt[i]); if (a in prov) return prov[a] }
      return ""
    }
    END {
      n = split(roots, r, " ")
      for (i = 1; i <= n; i++) if (r[i] in inst) add(r[i])
      for (p in base) add(p)
      head = 1
      while (head <= tail) {
        p = queue[head++]
        m = split(dep[p], groups, ",")
        for (j = 1; j <= m; j++) { q = pick(groups[j]); if (q != "") add(q) }
      }
      for (p in in_closure) print p
    }')

# need STAGE PATH: PATH (and, if it is a link, the file it leads to) must belong to the closure.
# The paths are collected first and resolved with a few dpkg-query calls at the end.
NEED_STAGE=()
NEED_PATH=()
# A link that update-alternatives made (/usr/bin/awk -> /etc/alternatives/awk) belongs to no
# package; only the file it leads to is checked then.
need() {
  local path real
  if [ ! -e "$2" ]; then
    echo "FAIL [$1] $2: not on this machine"; fail=1; return
  fi
  path=$(realpath -s "$2")
  real=$(readlink -f "$2")
  if [ "$real" = "$path" ] || [[ $(readlink "$path") != /etc/alternatives/* ]]; then
    NEED_STAGE+=("$1"); NEED_PATH+=("$path")
  fi
  if [ "$real" != "$path" ]; then NEED_STAGE+=("$1"); NEED_PATH+=("$real"); fi
}
# other_spelling PATH: Debian 12 registers most files under /lib and /bin, which are links into
# /usr (or the other way round), so a path dpkg does not know is tried in its other spelling.
other_spelling() {
  case "$1" in
    /usr/lib/* | /usr/bin/* | /usr/sbin/*) echo "${1#/usr}" ;;
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}
declare -A OWNER
# owners PATH...: fills OWNER[path] with the packages dpkg-query -S names for it.
owners() {
  local pkgs path
  while IFS= read -r line; do
    pkgs=${line%%: /*}; path=/${line#*: /}
    OWNER[$path]=$(tr ',' '\n' <<<"$pkgs" | sed 's/^ *//; s/:.*//' | tr '\n' ' ')
  done < <(dpkg-query -S "$@" 2>/dev/null | grep -v '^diversion ')
}
# need_cmd STAGE COMMAND...: the command as a fresh machine's PATH finds it (this machine may
# have other copies first in its PATH, e.g. under /usr/local or ~/.cargo/bin).
need_cmd() {
  local stage=$1 c path; shift
  for c in "$@"; do
    path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$c") || {
      echo "FAIL [$stage] command $c: not in /usr/bin, /bin, /usr/sbin or /sbin"; fail=1; continue
    }
    need "$stage" "$path"
  done
}
# need_lib_deps STAGE BINARY [SKIP-DIR]: the shared libraries ldd resolves for it (one that ldd
# does not find fails, by its name, as not on this machine).
need_lib_deps() {
  local lib
  for lib in $(ldd "$2" 2>/dev/null | awk '/=> \// { print $3 } /=> not found/ { print $1 } /^\t\/lib/ { print $1 }'); do
    [ -n "${3:-}" ] && [[ $lib == "$3"/* ]] && continue
    need "$1" "$lib"
  done
}

GEN="${CARGO_TARGET_DIR:-$PWD/target}/debug/xen-abi-gen"
[ -x "$GEN" ] || cargo build --locked -q -p xen-abi-gen
for mode in "--release $(machine_xen_release)" "--uapi --linux-release $(machine_linux_release)"; do
  stage="C conformance${mode/#--release*/}"
  stage="${stage/--uapi*/ (uapi)}"
  out=$("$GEN" c-probe $mode --headers-used) || { echo "$out"; echo "FAIL [$stage] the probe does not compile"; fail=1; continue; }
  for h in $(awk '$1 == "header" { print $2 }' <<<"$out"); do need "$stage" "$h"; done
done

need_cmd "every stage" gcc git awk sed tar grep timeout dpkg-deb apt-get
need_cmd "C conformance" i686-linux-gnu-gcc arm-linux-gnueabihf-gcc aarch64-linux-gnu-gcc
need_cmd "real Xen x86_64" qemu-system-x86_64 zcat
need "real Xen x86_64" /boot/xen-4.17-amd64.gz
need_cmd "Linux dom0" busybox cpio ldd
need_cmd "IOREQ" objdump strace xenstore-read chroot
need_cmd "real Xen arm64" qemu-system-aarch64 fdtput
need_cmd "arm64 Xen with IOREQ servers (from source)" dpkg-source make flex bison aarch64-linux-gnu-ld
need_cmd "arm64 Linux dom0" readelf cpio gzip
# tests/real-xen/arm64-ioreq-probe.c, static on the extracted arm64 libxen-dev: the cross C
# library's headers and what it links.
for h in $(aarch64-linux-gnu-gcc -M -x c - <<<'#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>' 2>/dev/null | sed 's/^[^:]*://; s/\\$//'); do
  if [[ $h == /* ]]; then need "arm64 Linux dom0 (probe headers)" "$h"; fi
done
for f in libc.a crt1.o crti.o crtn.o; do
  need "arm64 Linux dom0 (probe link)" "$(aarch64-linux-gnu-gcc -print-file-name="$f")"
done
# tests/real-xen/virtio-bench.c, static for the arm64 virtio guest.
for h in $(aarch64-linux-gnu-gcc -M tests/real-xen/virtio-bench.c 2>/dev/null | sed 's/^[^:]*://; s/\\$//'); do
  if [[ $h == /* ]]; then need "arm64 Linux dom0 (virtio-bench headers)" "$h"; fi
done
need_cmd "race check" curl
# libfuzzer-sys compiles libFuzzer with c++ (the cc crate), archives it with ar, links libstdc++.
need_cmd "guided spec fuzz" curl c++ ar timeout
if command -v c++ >/dev/null; then
  need "guided spec fuzz (link)" "$(c++ -print-file-name=libstdc++.so)"
fi
# The C programs of the IOREQ scenario: their headers and what they link.
for src in tests/c-server/cserver.c tests/real-xen/insn-windows.c tests/real-xen/mmio-bench.c \
  tests/real-xen/set-target.c tests/real-xen/virtio-bench.c; do
  for h in $(gcc -M "$src" | sed 's/^[^:]*://; s/\\$//'); do
    if [[ $h == /* ]]; then need "IOREQ ($src)" "$h"; fi
  done
done
for f in libxendevicemodel.a libxenforeignmemory.a libxenevtchn.a libxencall.a libxentoolcore.a \
  libxentoollog.a libxenctrl.a libxengnttab.a libc.a libpthread.a crt1.o rcrt1.o; do
  need "IOREQ (link)" "$(gcc -print-file-name="$f")"
done
# The dom0 tools the IOREQ initramfs carries, with their libraries.
for b in /usr/lib/xen-4.17/bin/xl /usr/lib/xen-4.17/bin/xenstored /usr/lib/xen-4.17/bin/xenconsoled \
  /usr/lib/xen-4.17/bin/xen-init-dom0 /usr/bin/xenstore-read /usr/bin/strace; do
  need "IOREQ (dom0 initramfs)" "$b"
  need_lib_deps "IOREQ (dom0 initramfs)" "$b"
done
need "IOREQ (dom0 initramfs)" "$(find /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu -name 'libgcc_s.so.1' | head -1)"
# What the virtio scenario next to QEMU adds to its dom0 initramfs: the device model with its
# libraries, hvmloader and the firmware and option ROM they load.
need "virtio next to QEMU" /usr/libexec/xen-qemu-system-i386
need_lib_deps "virtio next to QEMU" /usr/libexec/xen-qemu-system-i386
for f in /usr/lib/xen-4.17/boot/hvmloader /usr/share/seabios/bios-256k.bin \
  /usr/share/qemu/linuxboot.bin /usr/share/qemu/linuxboot_dma.bin /usr/share/qemu/kvmvapic.bin \
  /usr/share/qemu/keymaps/en-us; do
  need "virtio next to QEMU" "$f"
done
# Debian's rustc for the cross checks is unpacked from its .debs; what it loads from the
# machine (LLVM, declared by ensure_debian_rust) must be installed like the rest.
LD_LIBRARY_PATH="$DEBIAN_RUST_LD" need_lib_deps "Debian's rustc (cross checks)" "$DEBIAN_RUSTC" "$DEBIAN_RUST_LD"
# The MSRV check's rustc and cargo, unpacked the same way (PKGS_MSRV declares what cargo loads).
LD_LIBRARY_PATH="$MSRV_RUST_LD" need_lib_deps "MSRV check (Debian's rustc $MSRV)" "$MSRV_RUSTC" "$MSRV_RUST_LD"
need_lib_deps "MSRV check (Debian's cargo $MSRV)" "$MSRV_CARGO"

mapfile -t uniq < <(printf '%s\n' "${NEED_PATH[@]}" | sort -u)
owners "${uniq[@]}"
declare -A ALIAS
for p in "${uniq[@]}"; do
  [ -n "${OWNER[$p]:-}" ] || ALIAS[$(other_spelling "$p")]=$p
done
if [ ${#ALIAS[@]} -gt 0 ]; then
  owners "${!ALIAS[@]}"
  for a in "${!ALIAS[@]}"; do
    [ -n "${OWNER[$a]:-}" ] && OWNER[${ALIAS[$a]}]=${OWNER[$a]}
  done
fi
declare -A REPORTED
for i in "${!NEED_PATH[@]}"; do
  p=${NEED_PATH[$i]} stage=${NEED_STAGE[$i]}
  [ -n "${REPORTED[$p]:-}" ] && continue
  REPORTED[$p]=1
  pkgs=${OWNER[$p]:-}
  if [ -z "$pkgs" ]; then
    echo "FAIL [$stage] $p: no Debian package owns it (installed by hand?)"; fail=1; continue
  fi
  ok=0
  for q in $pkgs; do grep -qxF "$q" <<<"$closure" && ok=1; done
  if [ $ok = 0 ]; then
    echo "FAIL [$stage] $p comes from $(echo $pkgs | tr ' ' ','), which no declared package Depends on: declare it in tests/lib/packages.sh"
    fail=1
  fi
done
checked=${#REPORTED[@]}

if [ $fail != 0 ]; then
  echo "FAIL: the stages use files that a fresh machine installing only the declared packages would lack"
  exit 1
fi
echo "ok   $checked files and commands the stages use all come from the $(wc -w <<<"$declared") declared packages, the base system or their Depends closure ($(wc -l <<<"$closure") packages; no Recommends, nothing by hand)"
