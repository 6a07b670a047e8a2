"""An app host dies under load through the balancer: first its Nginx is killed, then
the host drops off the network. The balancer routes around it. Idempotent requests
must not fail once it has marked the host down; the figures say how many failed
before (README, More than one machine)."""

import subprocess
import time

from conftest import APPS, LB, notes_in_database, under_load
from testlib import http, wait_until

testinfra_hosts = [f"ansible://{LB}"]
NETWORK = "flaskvps-cluster"


def docker(*argv):
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=True).stdout.strip()


def test_killed_nginx_is_routed_around(host, apps, db):
    second = apps[1]

    def kill():
        second.run_expect([0], "systemctl kill --signal=KILL nginx.service")
        time.sleep(20)
        return None

    try:
        _, load, acked = under_load(host, "nginx-killed", kill, seconds=120)
    finally:
        second.run_expect([0], "systemctl restart nginx.service")
    assert not acked - notes_in_database(db)
    # A refused connection sends the request to the other host, POSTs included (it
    # was never sent): nothing fails.
    assert load["errors"] == 0 and load["non_2xx"] == 0, load


def test_host_off_the_network_is_routed_around(host, apps, db):
    name = APPS[1]
    address = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}', name)

    def cut():
        docker("network", "disconnect", NETWORK, name)
        time.sleep(30)
        return None

    try:
        _, load, acked = under_load(host, "host-unreachable", cut, seconds=120)
    finally:
        docker("network", "connect", "--ip", address, NETWORK, name)
    assert not acked - notes_in_database(db)
    # Requests that met the dead host before the balancer marked it down waited for the
    # connect timeout, then went to the other host; GETs never fail.
    assert load["errors"] == 0 and load["non_2xx"] == 0, load
    # It serves through the balancer again once it is back.
    wait_until(lambda: http(apps[1], "http://127.0.0.1/healthz", "-H", "Host: hello.test").status == 200, timeout=30)
