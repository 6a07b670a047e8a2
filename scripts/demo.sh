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

wait_for_boot() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) return 0 ;; esac
    sleep 1
  done
  echo "the demo VPS did not boot (systemd says '$state')" >&2
  return 1
}

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
    docker run -d --name "$name" --hostname demo \
      --cap-add SYS_ADMIN --cap-add NET_ADMIN \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
      --stop-signal SIGRTMIN+3 \
      -p 127.0.0.1:2222:22 -p 127.0.0.1:8080:80 -p 127.0.0.1:8443:443 \
      "$image" /lib/systemd/systemd >/dev/null
  else
    docker start "$name" >/dev/null
  fi
  wait_for_boot

  # What a VPS provider sets up: a sudo user that logs in with your key.
  docker exec -i "$name" sh -euc '
    id deploy >/dev/null 2>&1 || useradd --create-home --shell /bin/bash deploy
    install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
    cat > /home/deploy/.ssh/authorized_keys
    chown deploy:deploy /home/deploy/.ssh/authorized_keys
    chmod 0600 /home/deploy/.ssh/authorized_keys
    echo "deploy ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/deploy
    chmod 0440 /etc/sudoers.d/deploy
    printf "PasswordAuthentication no\nPermitRootLogin no\n" > /etc/ssh/sshd_config.d/demo.conf
    systemctl reload-or-restart ssh' <"$key.pub"

  for _ in $(seq 1 30); do
    ssh -q -i "$key" -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null deploy@127.0.0.1 true && break
    sleep 1
  done

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
