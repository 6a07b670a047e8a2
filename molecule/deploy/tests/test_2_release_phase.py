"""The release phase and one-off commands. The scenario's release_command is
`flask --app hello db-upgrade`, which records each run in the app's database; the app's
`flask migrations` command lists them."""

import json
import subprocess

from conftest import copy_app, extra_vars, playbook, serving_release
from testlib import app_state, http, run_playbook, slot_unit, wait_until


def migrations(host):
    """The releases the release command ran for, oldest first (a one-off command)."""
    out = host.check_output("/usr/local/bin/hello-run flask --app hello migrations")
    return [line.split()[0] for line in out.splitlines()]


def test_release_command_ran_once_for_each_new_release(host):
    # converge, v2, v3 (the broken release failed before recording); the rollback to
    # v2 and the no-op deploy ran nothing.
    history = app_state(host, "hello")["history"]
    assert migrations(host) == history[:3]


def test_release_command_never_runs_on_a_restart_or_a_reboot(host):
    before = migrations(host)
    host.run_expect([0], "systemctl restart %s.service", slot_unit(host, "hello"))
    subprocess.run(["docker", "restart", "--time", "20", host.backend.host], check=True, capture_output=True)
    wait_until(lambda: host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded"),
               timeout=60)
    wait_until(lambda: http(host, "https://127.0.0.1/healthz").status == 200, timeout=30)
    assert migrations(host) == before


def test_a_failing_release_command_stops_the_deploy(host, tmp_path):
    before = serving_release(host)
    source = copy_app(tmp_path, "v4", lambda path: (path / "VERSION").write_text("4\n"))
    failing = "echo 'migration failed: column visits.n is missing' >&2; exit 3"
    result = run_playbook(host, playbook("deploy.yml"), "-e", extra_vars(tmp_path, src=source, release_command=failing))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "release command" in output and "migration failed: column visits.n is missing" in output, output[-3000:]
    assert serving_release(host) == before


def test_one_off_commands_run_as_the_app_in_its_environment(host):
    release = serving_release(host)
    probe = "import os; print(os.getuid() == os.geteuid() != 0, os.environ['STATE_DIRECTORY'], os.getcwd())"
    out = host.check_output("/usr/local/bin/hello-run python -c %s", probe)
    assert out.split() == ["True", "/var/lib/hello", f"/srv/hello/releases/{release}/app"]
    assert host.check_output("/usr/local/bin/hello-run id -un") == "hello"
    # Its exit status is the command's, and only root may use it.
    assert host.run("/usr/local/bin/hello-run sh -c 'exit 7'").rc == 7
    assert host.run("runuser -u nobody -- /usr/local/bin/hello-run true").rc != 0
    # The same from the controller: playbooks/run.yml (make run).
    result = run_playbook(host, playbook("run.yml"), "-e",
                          json.dumps({"flaskapp_run_app": "hello", "flaskapp_run_command": "flask --app hello migrations"}))
    assert result.returncode == 0, result.stdout[-3000:]
    assert app_state(host, "hello")["history"][0] in result.stdout
