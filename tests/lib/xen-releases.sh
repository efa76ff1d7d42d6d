# Sourced: the Xen releases the spec is checked against, each with the Debian suite that ships
# it, and their public headers fetched from Debian's registry (libxen-dev, extracted into the
# cache; nothing is installed). Usage: xen_release_headers 4.14 -> prints the header directory.
#
# Each suite gets its own apt configuration (its own sources, lists and cache; an empty dpkg
# status), so the machine's apt state and sources are left alone.
# shellcheck source=tests/lib/private-apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"
XEN_RELEASES="4.14 4.17 4.20"
XEN_RELEASES_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/releases"

xen_release_suite() { # release -> Debian suite
  case $1 in
    4.14) echo bullseye ;;
    4.17) echo bookworm ;;
    4.20) echo trixie ;;
    *) echo "no Debian suite is known for Xen $1" >&2; return 1 ;;
  esac
}

# SUITE_ARCH (amd64 unless set): the architecture whose packages it sees; each architecture has
# an apt configuration of its own.
suite_apt() { # suite cmd...: apt on that Debian suite alone (tests/lib/private-apt.sh)
  local suite=$1 arch=${SUITE_ARCH:-amd64} dir; shift
  dir="$XEN_RELEASES_DIR/apt-$suite"
  [ "$arch" = amd64 ] || dir+="-$arch"
  apt_root "$dir" "$arch" "$suite" "$@"
}

# suite_package_tree SUITE PACKAGE VERSION_PREFIX DIR: the package's files from that suite,
# extracted once into DIR (its version recorded in DIR/version). Fails loudly when the suite has
# no candidate or the candidate is not the release expected.
suite_package_tree() {
  local suite=$1 pkg=$2 want=$3 dir=$4 deb ver
  [ -f "$dir/version" ] && return 0
  suite_apt "$suite" apt-get update -qq >/dev/null 2>&1 || true
  ver=$(suite_apt "$suite" apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }')
  if [ -z "$ver" ]; then
    echo "FAIL: Debian $suite has no $pkg candidate (is deb.debian.org reachable?)" >&2
    return 1
  fi
  case $ver in
    "$want".*) ;;
    *) echo "FAIL: Debian $suite's $pkg is $ver, not $want" >&2; return 1 ;;
  esac
  rm -rf "$dir.deb" && mkdir -p "$dir.deb"
  chown _apt "$dir.deb" 2>/dev/null || true
  (cd "$dir.deb" && suite_apt "$suite" apt-get download -qq "$pkg=$ver") || {
    echo "FAIL: could not download $pkg $ver from $suite" >&2; return 1; }
  deb=$(ls "$dir.deb"/"${pkg}"_*.deb | head -1)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg-deb -x "$deb" "$dir.tmp"
  echo "$ver" >"$dir.tmp/version"
  rm -rf "$dir" "$dir.deb" && mv "$dir.tmp" "$dir"
}

# xen_release_headers RELEASE: the directory holding that Xen release's xen/ headers.
xen_release_headers() {
  local suite
  suite=$(xen_release_suite "$1") || return 1
  suite_package_tree "$suite" libxen-dev "$1" "$XEN_RELEASES_DIR/$1" || return 1
  echo "$XEN_RELEASES_DIR/$1/usr/include/xen"
}

# xen_release_hypervisor RELEASE: that release's x86 hypervisor, uncompressed (QEMU's multiboot
# loader needs it so), from the suite's xen-hypervisor-RELEASE-amd64, extracted once.
xen_release_hypervisor() {
  local suite dir="$XEN_RELEASES_DIR/hypervisor-$1"
  suite=$(xen_release_suite "$1") || return 1
  suite_package_tree "$suite" "xen-hypervisor-$1-amd64" "$1" "$dir" || return 1
  if [ ! -s "$dir/xen" ]; then
    zcat "$dir/boot/xen-$1-amd64.gz" >"$dir/xen.tmp" || {
      echo "FAIL: xen-hypervisor-$1-amd64 has no /boot/xen-$1-amd64.gz" >&2; return 1; }
    mv "$dir/xen.tmp" "$dir/xen"
  fi
  echo "$dir/xen"
}

# The Linux release of each Xen release's Debian suite (its kernel runs that release's dom0).
xen_release_linux() {
  case $1 in
    4.14) echo 5.10 ;;
    4.17) echo 6.1 ;;
    4.20) echo 6.12 ;;
    *) echo "no Debian kernel is known for Xen $1" >&2; return 1 ;;
  esac
}

# xen_release_dom0_kernel RELEASE: the kernel that the release's suite's linux-image-amd64
# depends on, extracted once; prints its root directory and the kernel version, e.g.
# "/var/cache/xen-abi/releases/kernel-4.14 5.10.0-35-amd64". With SUITE_ARCH set (e.g. arm64),
# linux-image-ARCH's kernel, in a directory of its own.
xen_release_dom0_kernel() {
  local suite linux kpkg arch=${SUITE_ARCH:-amd64} dir="$XEN_RELEASES_DIR/kernel-$1"
  [ "$arch" = amd64 ] || dir+="-$arch"
  suite=$(xen_release_suite "$1") || return 1
  linux=$(xen_release_linux "$1") || return 1
  suite_apt "$suite" apt-get update -qq >/dev/null 2>&1 || true
  kpkg=$(suite_apt "$suite" apt-cache depends "linux-image-$arch" 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$kpkg" ] || { echo "FAIL: Debian $suite's linux-image-$arch names no kernel" >&2; return 1; }
  # A new kernel ABI in the suite gets a fresh directory.
  [ -f "$dir/package" ] && [ "$(cat "$dir/package")" != "$kpkg" ] && rm -rf "$dir"
  suite_package_tree "$suite" "$kpkg" "$linux" "$dir" || return 1
  echo "$kpkg" >"$dir/package"
  echo "$dir ${kpkg#linux-image-}"
}

# Whether release A is at least B (both "major.minor" or longer).
release_at_least() { # a b
  [ "$(printf '%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]
}

# release_xen RELEASE: the x86 hypervisor to boot for it: the machine's (ensure_xen_x86, from
# tests/lib/real-xen.sh) for 4.17, the release's cached Debian package otherwise.
release_xen() {
  if [ "$1" = 4.17 ]; then
    echo "$XEN_X86"
  else
    xen_release_hypervisor "$1" || { echo "FAIL: Xen $1's hypervisor could not be fetched" >&2; return 1; }
  fi
}

# The releases of the machine's own headers, which the plain C probes check (libxen-dev's and
# linux-libc-dev's major.minor; the cross linux-libc-dev variants are the same kernel).
machine_xen_release() {
  dpkg-query -W -f='${Version}' libxen-dev | sed -E 's/^([0-9]+\.[0-9]+).*/\1/'
}
machine_linux_release() {
  dpkg-query -W -f='${Version}' linux-libc-dev | sed -E 's/^([0-9]+\.[0-9]+).*/\1/'
}

xen_release_package_version() { # release -> the libxen-dev version its headers came from
  cat "$XEN_RELEASES_DIR/$1/version"
}

# The Linux releases whose uapi xen/ headers (privcmd.h, evtchn.h) the linux/* files are
# checked against: the kernels of the same three Debian releases.
LINUX_RELEASES="5.10 6.1 6.12"

linux_release_suite() { # kernel release -> Debian suite
  case $1 in
    5.10) echo bullseye ;;
    6.1) echo bookworm ;;
    6.12) echo trixie ;;
    *) echo "no Debian suite is known for Linux $1" >&2; return 1 ;;
  esac
}

# linux_release_headers RELEASE: the directory holding that kernel's uapi xen/ headers.
linux_release_headers() {
  local suite
  suite=$(linux_release_suite "$1") || return 1
  suite_package_tree "$suite" linux-libc-dev "$1" "$XEN_RELEASES_DIR/linux-$1" || return 1
  echo "$XEN_RELEASES_DIR/linux-$1/usr/include/xen"
}

linux_release_package_version() {
  cat "$XEN_RELEASES_DIR/linux-$1/version"
}

# xen_release_userland RELEASE: a dom0 user space of that release's suite, extracted (not
# installed) into the cache: xen-utils-RELEASE (xl, xenstored, xenconsoled, xen-init-dom0),
# xenstore-utils, strace and libxen-dev (headers and static libraries for the C server), with
# every library package they depend on, recursively (named lib* or in Debian's section libs;
# other dependencies, such as python3 for pygrub, are left out: nothing the scenarios run needs
# them, and a binary that did would fail at copy time naming the library it lacks). Prints the
# root. With SUITE_ARCH set (e.g. arm64), that architecture's packages, busybox-static too (the
# machine's busybox is amd64), in a root of their own.
xen_release_userland() {
  local rel=$1 suite dir="$XEN_RELEASES_DIR/userland-$1" todo done_ p d debs
  suite=$(xen_release_suite "$rel") || return 1
  todo="xen-utils-$rel xenstore-utils strace libxen-dev" done_=" "
  if [ "${SUITE_ARCH:-amd64}" != amd64 ]; then
    dir+="-$SUITE_ARCH" todo+=" busybox-static"
  fi
  [ -f "$dir/packages" ] && { echo "$dir"; return 0; }
  suite_apt "$suite" apt-get update -qq >/dev/null 2>&1 || true
  while [ -n "$todo" ]; do
    set -- $todo; p=$1; shift; todo="$*"
    case $done_ in *" $p "*) continue ;; esac
    done_+="$p "
    # Depends and Pre-Depends; a virtual or alternative dependency takes its first provider.
    for d in $(suite_apt "$suite" apt-cache depends --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$p" 2>/dev/null |
        awk '/^ *\|?(Pre)?Depends: / { if ($2 ~ /^</) want = 1; else { print $2; want = 0 }; next }
             want && /^    [^ ]/ { print $1; want = 0 }' | sed 's/:any$//'); do
      case $d in
        lib*) todo+=" $d" ;;
        *) suite_apt "$suite" apt-cache show "$d" 2>/dev/null | grep -qx 'Section: libs' && todo+=" $d" ;;
      esac
    done
  done
  rm -rf "$dir.debs" "$dir.tmp" && mkdir -p "$dir.debs" "$dir.tmp"
  chown _apt "$dir.debs" 2>/dev/null || true
  # shellcheck disable=SC2086
  (cd "$dir.debs" && suite_apt "$suite" apt-get download -qq $done_) || {
    echo "FAIL: could not download Xen $rel's dom0 user space from Debian $suite:$done_" >&2; return 1; }
  for debs in "$dir.debs"/*.deb; do dpkg-deb -x "$debs" "$dir.tmp"; done
  # Packages of merged-/usr suites ship /usr/lib and /usr/lib64 only; the program interpreter
  # and the default library path are /lib64 and /lib.
  for d in lib lib64 bin sbin; do
    [ -e "$dir.tmp/$d" ] || [ ! -d "$dir.tmp/usr/$d" ] || ln -s "usr/$d" "$dir.tmp/$d"
  done
  echo "$done_" >"$dir.tmp/packages"
  rm -rf "$dir" "$dir.debs" && mv "$dir.tmp" "$dir"
  echo "$dir"
}

# Sets xen, kver, vmlinuz, kconfig and mods (the kernel's drivers/xen) for a release: the machine's
# hypervisor and Debian's current kernel for 4.17 (ensure_xen_x86 and ensure_debian_kernel of
# tests/lib/real-xen.sh), the cached packages of the release's suite otherwise.
release_dom0() { # release
  xen=$(release_xen "$1") || exit 1
  if [ "$1" = 4.17 ]; then
    ensure_debian_kernel
    kver=$KVER vmlinuz=$VMLINUZ mods="$KMODS/drivers/xen"
    kconfig="${VMLINUZ%/vmlinuz-*}/config-$KVER"
    return 0
  fi
  local k root
  k=$(xen_release_dom0_kernel "$1") || { echo "FAIL: Xen $1's Debian kernel could not be fetched"; exit 1; }
  root=${k% *} kver=${k#* }
  vmlinuz="$root/boot/vmlinuz-$kver" kconfig="$root/boot/config-$kver"
  mods="$root/lib/modules/$kver/kernel/drivers/xen"
  [ -d "$mods" ] || mods="$root/usr/lib/modules/$kver/kernel/drivers/xen"
  [ -d "$mods" ] || { echo "FAIL: no drivers/xen modules in $root"; exit 1; }
}

# A module of $mods (a path below it, e.g. xenfs/xenfs) into DIR as NAME.ko, uncompressed
# (busybox's insmod reads plain .ko files; Debian 13 ships them xz-compressed, and busybox has
# unxz). The modules it needs must be in DIR already (the initramfs loads them in the order they
# were added).
add_module() { # path dir
  local ko deps d
  ko="$2/$(basename "$1").ko"
  if [ -f "$mods/$1.ko" ]; then
    cp "$mods/$1.ko" "$ko"
  elif [ -f "$mods/$1.ko.xz" ]; then
    busybox unxz -c "$mods/$1.ko.xz" >"$ko"
  else
    echo "FAIL: no $1 module in $mods"; exit 1
  fi
  deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | tr ',' ' ')
  for d in $deps; do
    [ -f "$2/$d.ko" ] || [ -f "$2/${d//_/-}.ko" ] ||
      { echo "FAIL: $1 needs $d, which this initramfs does not load before it"; exit 1; }
  done
}
