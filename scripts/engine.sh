#!/usr/bin/env bash
# Make sure a Docker engine answers, and that debootstrap (for the images) is here.
# CI starts with no daemon running: install Debian's docker.io if needed and start
# dockerd in the background, then wait until `docker info` answers.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
mkdir -p .cache
echo "starting dockerd (log: .cache/dockerd.log)"
sudo_if_needed nohup dockerd >.cache/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not answer within 60 s; see .cache/dockerd.log:" >&2
tail -n 20 .cache/dockerd.log >&2
exit 1
