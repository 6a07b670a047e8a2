"""A reboot while the waiter app's dependency (appdep, 127.0.0.1:5999) is still down:
its pre-start fails again and again for about 15 seconds, systemd keeps restarting it
(no start limit), and it serves once the dependency is up. flaskr's data is kept."""

import subprocess

from conftest import app_url, posts
from testlib import slot_unit, wait_until


def test_an_app_whose_dependency_comes_up_late_at_boot_serves_once_it_does(host):
    subprocess.run(["docker", "restart", "--time", "20", host.backend.host], check=True, capture_output=True)

    def booted():
        """systemd to finish booting"""
        return host.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
    wait_until(booted, timeout=90)
    unit = f"{slot_unit(host, 'waiter')}.service"

    def serves():
        """the waiter app to serve through Nginx"""
        return app_url(host, "waiter", "/healthz").status == 200
    wait_until(serves, timeout=90, interval=1)
    # It did meet its dependency down: several failed starts, then it stayed up.
    assert int(host.check_output("systemctl show --property NRestarts --value %s", unit)) >= 3
    assert host.service(unit).is_running
    assert host.run("systemctl is-system-running").stdout.strip() == "running"
    assert app_url(host, "waiter", "/note").body == "kept across releases"
    assert ("alice", "after rollback") in posts(host)
