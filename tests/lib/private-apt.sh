# Sourced: download Debian packages of other architectures without changing the machine's
# dpkg architectures: a private apt configuration with its own lists and cache, reading the
# machine's sources. Usage: private_apt_download DEST_DIR PKG:ARCH=VERSION...
PRIVATE_APT_DIR="${XEN_ABI_CACHE:-/var/cache/xen-abi}/apt"

# apt_root DIR ARCHS SUITE cmd...: run cmd (apt-get, apt-cache) with an apt configuration of
# its own in DIR (lists and cache there, made once) for the architectures ARCHS. With a SUITE,
# its sources are that Debian suite (main, -updates, -security) and the dpkg status is empty, so
# nothing installed on the machine counts; without one (""), the machine's sources and status.
apt_root() {
  local d=$1 archs=$2 suite=$3 a list=""; shift 3
  if [ ! -f "$d/apt.conf" ]; then
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial"
    for a in $archs; do list+="\"$a\"; "; done
    {
      echo "APT::Architecture \"${archs%% *}\";"
      echo "APT::Architectures { $list};"
      echo "Dir::State \"$d/state\";"
      echo "Dir::Cache \"$d/cache\";"
      if [ -n "$suite" ]; then
        : >"$d/status"
        cat >"$d/sources.list" <<SRC
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SRC
        echo "Dir::Etc::sourcelist \"$d/sources.list\";"
        echo "Dir::Etc::sourceparts \"-\";"
        echo "Dir::State::status \"$d/status\";"
      else
        echo "Dir::State::status \"/var/lib/dpkg/status\";"
      fi
    } >"$d/apt.conf"
    chown -R _apt "$d" 2>/dev/null || true
  fi
  APT_CONFIG="$d/apt.conf" "$@"
}

# The machine's sources, every architecture the tests fetch for.
private_apt() {
  apt_root "$PRIVATE_APT_DIR" "amd64 arm64 armhf i386" "" "$@"
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
