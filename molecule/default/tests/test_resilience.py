"""The stack heals itself: a reboot needs no Ansible run (a killed Nginx or Gunicorn
master, under load: molecule/reliability/tests/test_3_faults.py)."""

import subprocess

from conftest import serving
from testlib import wait_until


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
