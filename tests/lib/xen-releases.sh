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

suite_apt() { # suite cmd...: apt on that Debian suite alone (tests/lib/private-apt.sh)
  local suite=$1; shift
  apt_root "$XEN_RELEASES_DIR/apt-$suite" amd64 "$suite" "$@"
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
# "/var/cache/xen-abi/releases/kernel-4.14 5.10.0-35-amd64".
xen_release_dom0_kernel() {
  local suite linux kpkg dir="$XEN_RELEASES_DIR/kernel-$1"
  suite=$(xen_release_suite "$1") || return 1
  linux=$(xen_release_linux "$1") || return 1
  suite_apt "$suite" apt-get update -qq >/dev/null 2>&1 || true
  kpkg=$(suite_apt "$suite" apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$kpkg" ] || { echo "FAIL: Debian $suite's linux-image-amd64 names no kernel" >&2; return 1; }
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
