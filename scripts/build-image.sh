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
set -euo pipefail

suite=${1:?usage: build-image.sh bookworm|trixie}
case "$suite" in
  bookworm) tag=debian12 ;;
  trixie) tag=debian13 ;;
  *) echo "unknown suite '$suite': use bookworm or trixie" >&2; exit 2 ;;
esac
image="flask-vps:$tag"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
recipe=$(sha256sum "$0" | cut -c1-16)

if [ "$(docker image inspect -f '{{ index .Config.Labels "recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
  echo "$image is up to date"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
root=$(mktemp -d "/var/tmp/rootfs-$suite.XXXXXX")
trap 'rm -rf "$root"' EXIT

echo "building $image from $mirror ($suite)"
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
deb http://deb.debian.org/debian-security $suite-security main
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
