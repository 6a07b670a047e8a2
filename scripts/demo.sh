#!/usr/bin/env bash
# The local throwaway "VPS" of `make demo`: a systemd container built from Debian
# packages, with sshd and a key-only sudo user `deploy`, provisioned with
# `ansible-playbook site.yml -i inventory/demo` over SSH, as a real server would be.
#
#   scripts/demo.sh up     start (or reuse) the VPS and converge it
#   scripts/demo.sh down   remove everything the demo made
set -euo pipefail
cd "$(dirname "$0")/.."

name=flask-vps-demo
image=flask-vps:debian12
key=.demo/id_ed25519

up() {
  mkdir -p .demo
  [ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C flask-vps-demo -f "$key"

  # A demo VPS from before the firewall existed lacks NET_ADMIN: start it afresh.
  if docker container inspect "$name" >/dev/null 2>&1 &&
     ! docker container inspect -f '{{ .HostConfig.CapAdd }}' "$name" | grep -q NET_ADMIN; then
    docker rm -f "$name" >/dev/null
  fi
  if ! docker container inspect "$name" >/dev/null 2>&1; then
    echo "starting the demo VPS ($image) on 127.0.0.1: ssh 2222, http 8080, https 8443"
    scripts/vps-run "$name" "$image" --hostname demo \
      -p 127.0.0.1:2222:22 -p 127.0.0.1:8080:80 -p 127.0.0.1:8443:443
  else
    docker start "$name" >/dev/null
  fi
  scripts/vps-setup.sh "$name" "$key" 2222

  ansible-playbook site.yml -i inventory/demo
  echo
  echo "The sample app is served through Nginx: https://127.0.0.1:8443/"
  echo "(self-signed certificate: curl -k, or accept it in the browser; http://127.0.0.1:8080/ redirects there)"
  curl -fsSk https://127.0.0.1:8443/healthz && echo
}

down() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf .demo
  echo "demo removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
