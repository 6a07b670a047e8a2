"""Faults the stack survives, each measured with the load generator running:
the figures (requests, errors) go to load-<instance>.json in Molecule's scratch dir."""

import os
import time

import yaml
from testlib import Load, http, main_pid, run_playbook, slot_unit, wait_until

# rel-collection is test_4_collection's own host.
testinfra_hosts = ["ansible://rel-debian13"]

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SITE = os.path.join(PROJECT, "site.yml")


def serving(host):
    """Nginx and the app answer."""
    return http(host, "https://127.0.0.1/healthz").status == 200


def under_load(host, name):
    """The load generator, lighter than the deploy scenario's: these faults last seconds."""
    return Load(host, f"fault-{name}", rate=200, threads=4, seconds=90, settle=2)


def test_killed_nginx_is_restarted_by_systemd(host):
    before = main_pid(host, "nginx.service")
    with under_load(host, "kill-nginx") as load:
        killed = time.monotonic()
        host.run_expect([0], "kill -KILL %s", str(before))
        wait_until(lambda: main_pid(host, "nginx.service") not in (0, before), timeout=15)
        wait_until(lambda: serving(host), timeout=15)
        down = time.monotonic() - killed
    load.record(down_seconds=round(down, 1))
    assert down < 5
    # Only requests sent while Nginx was down fail (the load runs at 200/s).
    assert load.figures["requests"] > 0
    assert load.figures["non_2xx"] + load.figures["errors"] <= 200 * (down + 1), load.figures


def test_killed_gunicorn_master_is_restarted_by_systemd(host):
    unit = f"{slot_unit(host, 'hello')}.service"
    before = main_pid(host, unit)
    with under_load(host, "kill-gunicorn") as load:
        host.run_expect([0], "kill -KILL %s", str(before))
        wait_until(lambda: main_pid(host, unit) not in (0, before), timeout=15)
        wait_until(lambda: serving(host), timeout=15)
    load.record()
    # The socket stays open (systemd holds it): only the requests the killed
    # workers were serving are lost, as 502s from Nginx.
    assert load.figures["errors"] == 0, load.figures
    assert load.figures["non_2xx"] <= 20, load.figures


def test_hand_broken_config_is_repaired_and_never_takes_nginx_down(host):
    vhost = "/etc/nginx/sites-enabled/hello.conf"
    with under_load(host, "broken-config") as load:
        host.run_expect([0], "echo 'this is not nginx config' >> %s", vhost)
        # A reload of the broken config is refused by Nginx, which keeps serving.
        host.run("systemctl reload nginx")
        assert host.service("nginx").is_running
        assert serving(host)
        # The next run puts the right file back, tests it and reloads.
        result = run_playbook(host, SITE)
        assert result.returncode == 0, result.stdout[-3000:]
    load.record()
    assert "this is not nginx config" not in host.file(vhost).content_string
    assert host.run("nginx -t").rc == 0
    assert load.figures["non_2xx"] == 0 and load.figures["errors"] == 0, load.figures


def test_one_unreachable_host_does_not_stop_the_others(host, tmp_path):
    # A server that is down, as users reach theirs: over SSH, which is refused (nothing
    # listens on port 1 of the controller's loopback). (A Docker connection to a missing
    # container fails the first task instead, with pipelining on.)
    ghost = tmp_path / "ghost.yml"
    ghost.write_text(yaml.safe_dump({"webservers": {"hosts": {"ghost": {
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}}}}))
    result = run_playbook(host, SITE, "-i", str(ghost), limit=f"{host.backend.host},ghost")
    recap = result.stdout[result.stdout.rindex("PLAY RECAP"):]
    assert result.returncode == 4, recap  # 4: some hosts were unreachable
    assert "ghost" in recap and "unreachable=1" in recap
    line = next(l for l in recap.splitlines() if l.startswith(host.backend.host))
    assert "failed=0" in line and "unreachable=0" in line
    assert serving(host)
