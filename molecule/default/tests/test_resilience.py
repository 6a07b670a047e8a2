"""The stack heals itself: a killed Gunicorn master and a reboot need no Ansible run."""

import subprocess

from conftest import main_pid, serving, slot_unit, wait_until


def test_killed_gunicorn_master_is_restarted_by_systemd(host):
    unit = f"{slot_unit(host, 'hello')}.service"
    before = main_pid(host, unit)
    host.run_expect([0], "kill -KILL %s", str(before))

    def restarted():
        """a new main process of hello's serving slot"""
        pid = main_pid(host, unit)
        return pid not in (0, before) and host.service(unit).is_running
    wait_until(restarted)
    wait_until(lambda: serving(host))


def test_everything_serves_again_after_a_reboot(host):
    name = host.backend.host
    subprocess.run(["docker", "restart", "--time", "20", name], check=True, capture_output=True)

    def booted():
        """systemd to finish booting"""
        state = host.run("systemctl is-system-running").stdout.strip()
        return state in ("running", "degraded")
    wait_until(booted, timeout=60)
    assert host.run("systemctl is-system-running").stdout.strip() == "running"
    wait_until(lambda: serving(host), timeout=30)
