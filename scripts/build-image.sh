#!/usr/bin/env bash
# Build a Debian "VPS" base image from Debian packages (no registry is reachable).
#
#   scripts/build-image.sh bookworm   -> flask-vps:debian12
#   scripts/build-image.sh trixie     -> flask-vps:debian13
#
# The image boots systemd and has what a cloud VPS image ships (sshd, sudo,
# python3 and python3-apt, CA certificates, curl, iproute2, procps) and nothing
# our roles are meant to install themselves (nginx, python3-venv). Debian's cloud
# images have python3-apt (unattended-upgrades needs it); Ansible's apt module
# needs it for --check. It is rebuilt only when
# this script changes: the script's hash is stored as an image label.
#
# Packages come from the Debian mirror this machine's apt uses (the entries for
# its own suite and <suite>-security), with the image's suite names. Override with
# DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (e.g. http://<mirror>/debian).
set -euo pipefail

suite=${1:?usage: build-image.sh bookworm|trixie}
case "$suite" in
  bookworm) tag=debian12 ;;
  trixie) tag=debian13 ;;
  *) echo "unknown suite '$suite': use bookworm or trixie" >&2; exit 2 ;;
esac
image="flask-vps:$tag"
recipe=$(sha256sum "$0" | cut -c1-16)

if [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
  echo "$image is up to date"
  exit 0
fi

# No mirror host is written down here: use the one this machine's apt uses.
# host_apt_uri SUITE prints the first URI of an enabled "deb" entry for SUITE in
# /etc/apt/sources.list, sources.list.d/*.list (one-line) or *.sources (deb822).
host_apt_uri() {
  local want=$1 f
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  for f in "${files[@]}"; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources) awk -v want="$want" '
        function flush(   n, i, s, u) {
          if (uris != "" && types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) !~ /^[ \t]*no/) {
            n = split(suites, s, " ")
            for (i = 1; i <= n; i++) if (s[i] == want) { split(uris, u, " "); print u[1]; done = 1; exit }
          }
          types = uris = suites = enabled = key = ""
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (key == "uris") uris = uris " " $0; else if (key == "suites") suites = suites " " $0; next }
        {
          key = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "enabled") enabled = val
        }
        END { if (!done) flush() }' "$f" ;;
      *) awk -v want="$want" '
        { sub(/#.*/, ""); gsub(/\[[^]]*\]/, " ") }
        $1 == "deb" && $3 == want { print $2; exit }' "$f" ;;
    esac
  done | sed -n '1s:/*$::p'
}

# shellcheck source=/dev/null
host_suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
mirror=${DEBIAN_MIRROR:-}
security_mirror=${DEBIAN_SECURITY_MIRROR:-}
if [ -n "$host_suite" ]; then
  [ -n "$mirror" ] || mirror=$(host_apt_uri "$host_suite")
  [ -n "$security_mirror" ] || security_mirror=$(host_apt_uri "$host_suite-security")
fi
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in this machine's apt sources (for suite '${host_suite:-unknown}'):" \
       "set DEBIAN_MIRROR, e.g. DEBIAN_MIRROR=http://<your-mirror>/debian" >&2
  exit 1
fi
if [ -z "$security_mirror" ]; then
  echo "no Debian security mirror found in this machine's apt sources (for suite" \
       "'${host_suite:-unknown}-security'): set DEBIAN_SECURITY_MIRROR (DEBIAN_MIRROR is $mirror)" >&2
  exit 1
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
root=$(mktemp -d "/var/tmp/rootfs-$suite.XXXXXX")
trap 'rm -rf "$root"' EXIT

echo "building $image from $mirror and $security_mirror ($suite)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,openssh-server,ca-certificates,curl,iproute2,procps,less \
  "$suite" "$root" "$mirror" >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# The package proxy re-signs TLS: trust the host's extra CAs so pip works inside.
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$root" update-ca-certificates >/dev/null 2>&1

cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES

# A container has no consoles or hardware: skip units that only wait or fail.
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
            systemd-remount-fs.service systemd-firstboot.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Each container gets its own machine-id at first boot.
: >"$root/etc/machine-id"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

tar -C "$root" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL recipe=$recipe" \
  - "$image" >/dev/null
echo "built $image"
