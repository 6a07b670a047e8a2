#!/usr/bin/env bash
# Time provisioning: a fresh converge of site.yml on a NEW throwaway container,
# an idempotent re-run (it must report changed=0) and three deploys of a new release
# as a user ships one: `ansible-playbook playbooks/deploy.yml -i inventory/demo
# -e flaskapp_src=DIR`, DIR a copy of app/ with a code-only change (a VERSION file
# with a new value each time). Ansible's profile_tasks callback shows where the time
# goes. The container is removed at the end, whatever happens.
#
#   bench/provision.sh [LOGDIR]
#
# The container is started from flask-vps:debian12 as scripts/demo.sh starts the
# demo VPS, under another name and with only SSH published (127.0.0.1:2232), and
# reached over SSH with a key made for this run. LOGDIR (default: a new
# temporary directory) receives converge.log, rerun.log, deploy1.log..deploy3.log and
# `times`, which bench.py reads: boot_s, converge_s, rerun_s, rerun_changed, deploy1_s..
# deploy3_s, deploy_s (their median), deploy1_release.. (the release /healthz served
# after each), healthz (or, when a run fails, `error`: Ansible's error line).
set -euo pipefail
cd "$(dirname "$0")/.."

name=${BENCH_FRESH_NAME:-flask-vps-bench-fresh}
image=flask-vps:debian12
ssh_port=${BENCH_FRESH_SSH_PORT:-2232}
logdir=${1:-$(mktemp -d /tmp/bench-provision.XXXXXX)}
mkdir -p "$logdir"
logdir=$(realpath "$logdir")
key="$logdir/id_ed25519"

# The image as `make demo` builds it (a no-op when it is up to date).
scripts/build-image.sh bookworm

cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup  # a container left over by an interrupted run

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

rm -f "$key" "$key.pub"
ssh-keygen -q -t ed25519 -N '' -C "$name" -f "$key"

echo "provisioning: starting $name ($image), ssh on 127.0.0.1:$ssh_port"
# Started as the demo VPS is (scripts/vps-run: the Molecule platform definition).
t0=$(now)
scripts/vps-run "$name" "$image" --hostname bench-fresh -p "127.0.0.1:$ssh_port:22"

# What a VPS provider sets up, as for the demo.
scripts/vps-setup.sh "$name" "$key" "$ssh_port"
t1=$(now)

# The demo inventory, pointed at this container (extra vars win over inventory vars).
playbook() {
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=all \
    ANSIBLE_FORCE_COLOR=0 ansible-playbook "${playbook_file:-site.yml}" -i inventory/demo \
    -e "ansible_port=$ssh_port" -e "ansible_ssh_private_key_file=$key" "$@"
}

echo "provisioning: fresh converge (log: $logdir/converge.log)"
failed() {
  sed -n '/^\[ERROR\]\|^fatal:/,/^PLAY RECAP/p' "$1" | head -n 40 >&2
  grep -m1 '^\[ERROR\]' "$1" >"$logdir/error" || true
  exit 1
}
playbook >"$logdir/converge.log" 2>&1 || failed "$logdir/converge.log"
t2=$(now)
echo "provisioning: idempotent re-run (log: $logdir/rerun.log)"
playbook >"$logdir/rerun.log" 2>&1 || failed "$logdir/rerun.log"
t3=$(now)

# HTTPS when the stack has it (port 80 then only redirects), else plain HTTP.
get_healthz() {
  docker exec "$name" sh -c 'curl -fsSk --max-time 5 https://127.0.0.1/healthz ||
    curl -fsS --max-time 5 http://127.0.0.1/healthz' 2>/dev/null || echo "no answer"
}
release() { sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' <<<"$1"; }

# Deploys of a new release, as a user runs them (playbooks/deploy.yml, inventory/demo
# pointed at this container): the sample app with a code-only change, a VERSION file
# with a new value each time, so a new release id each time. Each must leave /healthz
# serving a release other than the one before it.
deploys=3
served=$(release "$(get_healthz)")
deploy_times=()
deploy_releases=()
for i in $(seq 1 "$deploys"); do
  src="$logdir/app$i"
  rm -rf "$src" && cp -r app "$src" && echo "bench-$i-$(date +%s.%N)" >"$src/VERSION"
  echo "provisioning: deploy $i of $deploys, a code-only change (log: $logdir/deploy$i.log)"
  d0=$(now)
  playbook_file=playbooks/deploy.yml playbook -e "flaskapp_src=$src" >"$logdir/deploy$i.log" 2>&1 ||
    failed "$logdir/deploy$i.log"
  d1=$(now)
  now_served=$(release "$(get_healthz)")
  if [ -z "$now_served" ] || [ "$now_served" = "$served" ]; then
    echo "[ERROR]: deploy $i: /healthz serves release '${now_served:-none}', not a new one" |
      tee "$logdir/error" >&2
    exit 1
  fi
  served=$now_served
  deploy_times+=("$(seconds "$d0" "$d1")")
  deploy_releases+=("$served")
  echo "provisioning: deploy $i: ${deploy_times[-1]} s (release $served)"
done
t4=$(now)
# The median: the middle one of the (odd number of) deploys' times.
deploy_median=$(printf '%s\n' "${deploy_times[@]}" | sort -n | sed -n "$(((deploys + 1) / 2))p")

changed=$(sed -n 's/.* changed=\([0-9]*\) .*/\1/p' "$logdir/rerun.log" | tail -n 1)
healthz=$(get_healthz)

cat >"$logdir/times" <<TIMES
boot_s=$(seconds "$t0" "$t1")
converge_s=$(seconds "$t1" "$t2")
rerun_s=$(seconds "$t2" "$t3")
rerun_changed=${changed:-unknown}
$(for i in "${!deploy_times[@]}"; do
  echo "deploy$((i + 1))_s=${deploy_times[i]}"
  echo "deploy$((i + 1))_release=${deploy_releases[i]}"
done)
deploy_s=$deploy_median
healthz=$healthz
TIMES
echo "provisioning: boot $(seconds "$t0" "$t1") s, fresh converge $(seconds "$t1" "$t2") s," \
  "re-run $(seconds "$t2" "$t3") s (changed=${changed:-unknown}), deploys" \
  "$(IFS=/; echo "${deploy_times[*]}") s (median $deploy_median s);" \
  "slowest tasks of the converge:"
grep -E ' -{3,} [0-9.]+s$' "$logdir/converge.log" | head -n 5 || true
