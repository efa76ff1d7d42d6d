# Sourced by the top-level scripts (after tests/lib/packages.sh): makes sure cargo and rustc are
# there. On a machine without a Rust toolchain (a fresh Debian 12), installs Debian's: rustc and
# cargo, plus rustfmt and clippy, which tests/run.sh uses and which Debian packages separately.
DEBIAN_TOOLCHAIN_PACKAGES="rustc-web cargo-web rustfmt-web rust-web-clippy"

ensure_toolchain() {
  if command -v cargo >/dev/null 2>&1; then
    return 0
  fi
  echo "== no cargo on this machine: installing Debian's Rust toolchain"
  # shellcheck disable=SC2086
  ensure_packages $DEBIAN_TOOLCHAIN_PACKAGES
  command -v cargo >/dev/null 2>&1 || { echo "FAIL: cargo-web installed no cargo command" >&2; exit 1; }
}

# Whether the cargo in PATH is Debian's (then its packages count as declared test packages).
toolchain_from_debian() {
  [ "$(readlink -f "$(command -v cargo)")" = /usr/bin/cargo ]
}
