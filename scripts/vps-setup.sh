#!/usr/bin/env bash
# What a VPS provider does for a fresh container from scripts/build-image.sh:
# wait for systemd to boot, add a sudo user `deploy` that logs in with KEY.pub
# only, and wait until SSH on 127.0.0.1:SSH_PORT lets it in.
#
#   scripts/vps-setup.sh CONTAINER KEY SSH_PORT
set -euo pipefail
name=${1:?usage: vps-setup.sh CONTAINER KEY SSH_PORT}
key=${2:?usage: vps-setup.sh CONTAINER KEY SSH_PORT}
ssh_port=${3:?usage: vps-setup.sh CONTAINER KEY SSH_PORT}

state=""
for _ in $(seq 1 60); do
  state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 1
done
case "$state" in running | degraded) ;; *) echo "$name did not boot (systemd says '$state')" >&2; exit 1 ;; esac

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
  ssh -q -i "$key" -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null deploy@127.0.0.1 true && exit 0
  sleep 1
done
echo "SSH to deploy@127.0.0.1:$ssh_port did not answer" >&2
exit 1
