# Sourced: download Debian packages of other architectures without changing the machine's
# dpkg architectures: a private apt configuration with its own lists and cache, reading the
# machine's sources. Usage: private_apt_download DEST_DIR PKG:ARCH=VERSION...
PRIVATE_APT_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/apt"

private_apt() {
  local d="$PRIVATE_APT_DIR"
  if [ ! -f "$d/apt.conf" ]; then
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial"
    cat >"$d/apt.conf" <<CONF
APT::Architectures { "amd64"; "arm64"; "armhf"; "i386"; };
Dir::State "$d/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$d/cache";
CONF
    chown -R _apt "$d" 2>/dev/null || true
  fi
  APT_CONFIG="$d/apt.conf" "$@"
}

# Refresh the private lists (a mirror mid-sync can make one index fail: callers check that what
# they need has a candidate).
private_apt_update() {
  private_apt apt-get update -qq >/dev/null 2>&1 || true
}

# private_apt_candidate PKG:ARCH -> version or empty
private_apt_candidate() {
  private_apt apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'
}

private_apt_download() { # dest pkg...
  local dest=$1; shift
  mkdir -p "$dest"
  chown _apt "$dest" 2>/dev/null || true
  (cd "$dest" && private_apt apt-get download -qq "$@")
}
