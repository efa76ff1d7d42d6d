# Sourced: a private Rust toolchain from Debian's packages, with the standard library for
# arm64, armhf and i386, so `cargo check --target ...` evaluates xen-sys's const assertions on
# every architecture Xen supports. Only Debian's package registry is used, through a private apt
# configuration (the machine's dpkg architectures are left alone). The packages are extracted
# into the cache, never installed.
#
# The toolchain and the foreign std must be the very same build: every package is pinned to one
# version, by default the arm64 candidate of libstd-rust-web-dev (tests/msrv-check.sh asks for
# the MSRV's version from Debian 12's main archive instead).
. "$(dirname "${BASH_SOURCE[0]}")/private-apt.sh"

DEBIAN_RUST_CACHE="${XEN_ABI_CACHE:-/var/cache/xen-abi}/debian-rust"
# The libllvm of every toolchain ensured so far (tests/package-check.sh declares them).
DEBIAN_RUST_PACKAGES=""

# debian_rust_version [UPSTREAM]: the Debian version of the toolchain. Without UPSTREAM, the
# arm64 candidate of libstd-rust-web-dev; with one (1.85), the newest version of rustc-web that
# Debian offers for it (1.85.x), whichever suite has it. Empty if Debian has none. The lists are
# refreshed once if the first look finds nothing.
debian_rust_version() {
  local v try
  for try in 1 2; do
    if [ -z "${1:-}" ]; then
      v=$(private_apt_candidate libstd-rust-web-dev:arm64)
    else
      v=$(private_apt apt-cache madison rustc-web 2>/dev/null |
        awk -F' *[|] *' -v up="$1" 'index($2, up ".") == 1 { print $2 }' | sort -V | tail -1)
    fi
    [ -n "$v" ] || [ $try = 2 ] || private_apt_update
    [ -z "$v" ] || break
  done
  echo "$v"
}

# ensure_debian_rust [VERSION [PKG...]]: downloads and extracts Debian's rustc-web of VERSION (a
# Debian version; default: debian_rust_version) with its std for amd64, arm64, armhf and i386,
# and the amd64 packages PKG of the same version (cargo-web). Sets DEBIAN_RUSTC and
# DEBIAN_RUST_LD (with PKG=cargo-web, its cargo is beside DEBIAN_RUSTC), installs the libllvm
# the compiler links against, prints `rustc --version`; exits loudly on any failure.
ensure_debian_rust() {
  local v=${1:-} extra=("${@:2}")
  [ -n "$v" ] || v=$(debian_rust_version "")
  if [ -z "$v" ]; then
    echo "FAIL: Debian has no libstd-rust-web-dev for arm64 (apt-cache policy found none)" >&2
    exit 1
  fi
  local mm
  mm=$(echo "$v" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
  local debs="$DEBIAN_RUST_CACHE/debs-$v" root="$DEBIAN_RUST_CACHE/root-$v"
  local want=(
    "rustc-web:amd64" "libstd-rust-web-$mm:amd64" "libstd-rust-web-dev:amd64"
    "libstd-rust-web-dev:arm64" "libstd-rust-web-dev:armhf" "libstd-rust-web-dev:i386"
  )
  local p missing=() files=()
  for p in "${extra[@]}"; do want+=("$p:amd64"); done
  # apt-get download names a file PACKAGE_VERSION_ARCH.deb, the epoch's colon as %3a.
  for p in "${want[@]}"; do
    files+=("$debs/${p%:*}_${v//:/%3a}_${p#*:}.deb")
    [ -f "${files[-1]}" ] || missing+=("$p=$v")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== downloading Debian's Rust $v: ${missing[*]}"
    private_apt_download "$debs" "${missing[@]}" || {
      echo "FAIL: could not download Debian's Rust $v packages: ${missing[*]}" >&2
      exit 1
    }
  fi
  # The compiler driver links against Debian's LLVM.
  local llvm
  llvm=$(private_apt apt-cache show "libstd-rust-web-$mm:amd64=$v" | grep -o 'libllvm[0-9]*' | head -1)
  case " $DEBIAN_RUST_PACKAGES " in *" $llvm "*) ;; *) DEBIAN_RUST_PACKAGES+="$llvm " ;; esac
  [ -n "$llvm" ] && ensure_packages "$llvm"
  # The root is extracted anew whenever it lacks one of the packages asked for now.
  local f have
  have=$(cat "$root/.debs" 2>/dev/null || true)
  for f in "${files[@]}"; do
    if ! grep -qxF "${f##*/}" <<<"$have"; then
      rm -rf "$root.tmp" "$root"
      for d in "$debs"/*.deb; do
        dpkg-deb -x "$d" "$root.tmp"
        echo "${d##*/}" >>"$root.tmp/.debs"
      done
      mv "$root.tmp" "$root"
      break
    fi
  done
  DEBIAN_RUSTC="$root/usr/bin/rustc"
  DEBIAN_RUST_LD="$root/usr/lib/x86_64-linux-gnu"
  LD_LIBRARY_PATH="$DEBIAN_RUST_LD" "$DEBIAN_RUSTC" --version
}

# cargo with the private toolchain: debian_cargo ARGS...
debian_cargo() {
  LD_LIBRARY_PATH="$DEBIAN_RUST_LD" RUSTC="$DEBIAN_RUSTC" cargo "$@"
}

# ensure_msrv_rust: Debian's rustc-web and cargo-web of the crates' rust-version (the newest
# Debian build of it, e.g. 1.85.x from Debian 12's main archive) with the libraries its cargo
# links against (PKGS_MSRV). Sets MSRV (1.85), MSRV_DEBIAN_VERSION, MSRV_RUSTC_VERSION (what
# the compiler says, 1.85.0), MSRV_CARGO and, through ensure_debian_rust, DEBIAN_RUSTC and
# DEBIAN_RUST_LD; exits loudly on any failure.
ensure_msrv_rust() {
  local top
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  MSRV=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$top"/xen-abi-gen/Cargo.toml \
    "$top"/xen-abi-macros/Cargo.toml "$top"/xen-sys/Cargo.toml "$top"/xen/Cargo.toml | sort -u)
  if [ -z "$MSRV" ] || [ "$(wc -l <<<"$MSRV")" != 1 ]; then
    echo "FAIL: the crates do not state one rust-version: $(echo "$MSRV" | tr '\n' ' ')" >&2
    exit 1
  fi
  MSRV_DEBIAN_VERSION=$(debian_rust_version "$MSRV")
  if [ -z "$MSRV_DEBIAN_VERSION" ]; then
    echo "FAIL: Debian offers no rustc-web $MSRV.x (apt-cache madison rustc-web)" >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  ensure_packages $PKGS_MSRV
  ensure_debian_rust "$MSRV_DEBIAN_VERSION" cargo-web
  MSRV_CARGO="$(dirname "$DEBIAN_RUSTC")/cargo"
  MSRV_RUSTC_VERSION=$(LD_LIBRARY_PATH="$DEBIAN_RUST_LD" "$DEBIAN_RUSTC" --version | awk '{ print $2 }')
  case $MSRV_RUSTC_VERSION in
    "$MSRV" | "$MSRV".*) ;;
    *)
      echo "FAIL: Debian's rustc-web $MSRV_DEBIAN_VERSION is rustc $MSRV_RUSTC_VERSION, not $MSRV" >&2
      exit 1
      ;;
  esac
}
