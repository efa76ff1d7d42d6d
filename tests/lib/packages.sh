# Sourced by the top-level scripts: every Debian package the tests use, by stage, and how they
# are installed. A fresh Debian 12 machine gets exactly these and what they Depend on: packages
# are installed with --no-install-recommends, so nothing may come from a Recommends (the cross
# compilers only *recommend* their C library headers, which is how those once went missing).
# tests/package-check.sh proves that every file and command the stages use is owned by one of
# these packages or by their Depends closure.

# tests/generate.sh and every stage: cargo fetches crates over https and links with cc.
PKGS_GENERATE="ca-certificates gcc libc6-dev"
# tests/run.sh: abi-diff and the workflow test read the repository with git.
PKGS_BASE="$PKGS_GENERATE git"
# C conformance (xen-abi-gen c-probe): Xen's public headers and, per architecture, a compiler
# with its C library and Linux uapi headers (the cross libc6-dev pulls the cross linux-libc-dev).
PKGS_C_PROBE="libxen-dev linux-libc-dev
  gcc-i686-linux-gnu libc6-dev-i386-cross
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
# Real Xen on x86_64: QEMU and the hypervisor (zcat, from gzip, is essential).
PKGS_XEN_X86="qemu-system-x86 xen-hypervisor-4.17-amd64"
# A Linux dom0: its initramfs is busybox and a cpio archive.
PKGS_LINUX_DOM0="$PKGS_XEN_X86 busybox-static cpio"
# IOREQ: the toolstack in dom0, the C baseline on Xen's stable libraries (libxen-dev), the i686
# linker for the PVH guest, objdump (binutils) for the guest's timing marks, strace.
PKGS_IOREQ="$PKGS_LINUX_DOM0 xen-utils-4.17 xenstore-utils libxen-dev libc6-dev binutils
  gcc-i686-linux-gnu libc6-dev-i386-cross strace"
# Virtio next to QEMU (tests/real-xen/virtio-hvm.sh): Debian's Xen device model.
PKGS_VIRTIO_HVM="$PKGS_IOREQ qemu-system-xen"
# The MSRV check (tests/msrv-check.sh): Debian 12's cargo-web of the MSRV is extracted, not
# installed, so the libraries it links against are declared here (its rustc's libllvm is read
# from its package, like the cross checks').
PKGS_MSRV="libcurl4 libhttp-parser2.9 libpcre3 libsqlite3-0 libssh2-1 libssl3 zlib1g"
# The race check (tests/race-check.sh): curl fetches rustup-init for its pinned nightly.
PKGS_RACE="curl"
# The guided spec fuzz (tests/spec-fuzz-guided.sh): the race check's nightly (curl), and g++ for
# libFuzzer, which libfuzzer-sys builds from its C++ sources and links with libstdc++.
PKGS_SPEC_FUZZ="curl g++"
# Real Xen on arm64: QEMU, fdtput for the device tree, the aarch64 linker for the dom0.
PKGS_ARM64="qemu-system-arm device-tree-compiler gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
# An arm64 Xen with IOREQ servers from Debian's source package (tests/lib/xen-arm64-ioreq.sh):
# dpkg-source unpacks and patches it, Xen's build needs make, flex and bison.
PKGS_ARM64_XEN_BUILD="$PKGS_ARM64 dpkg-dev make flex bison"
# A Linux arm64 dom0 and guest on that Xen (tests/real-xen/arm64-linux.sh): Debian's arm64 kernel,
# xen-utils-4.17 and busybox-static are fetched and extracted (not installed); readelf (binutils)
# finds the libraries of programs this machine cannot run, cpio packs the initramfs images.
PKGS_ARM64_LINUX="$PKGS_ARM64_XEN_BUILD binutils cpio"

# The union, which tests/run.sh installs before the first stage (README.md lists it).
# shellcheck disable=SC2086
TEST_PACKAGES=$(printf '%s\n' $PKGS_BASE $PKGS_C_PROBE $PKGS_XEN_X86 $PKGS_LINUX_DOM0 \
  $PKGS_IOREQ $PKGS_VIRTIO_HVM $PKGS_ARM64 $PKGS_ARM64_XEN_BUILD $PKGS_ARM64_LINUX $PKGS_MSRV \
  $PKGS_RACE $PKGS_SPEC_FUZZ | sort -u | tr '\n' ' ')

# Installs the packages that are not installed yet (as root; otherwise names them and exits).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    package_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for p in "${missing[@]}"; do
    package_installed "$p" || { echo "FAIL: apt-get did not install $p" >&2; exit 1; }
  done
}

# Whether dpkg has the package fully installed (not merely known, or half-configured).
package_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}
