"""An app host dies under load through the balancer: first its Nginx is killed, then
the host drops off the network. The balancer routes around it. Idempotent requests
must not fail once it has marked the host down; the figures say how many failed
before (README, More than one machine)."""

import time

from conftest import LB, notes_in_database, under_load
from testlib import http, wait_until

testinfra_hosts = [f"ansible://{LB}"]


def back_in_pool(lb, app_host):
    """Whether requests through the balancer reach app_host again."""
    tag = f"back-{time.monotonic_ns()}"
    for _ in range(4):
        http(lb, f"https://hello.test/healthz?{tag}")
    return app_host.run("grep -c -- %s /var/log/nginx/access.log", tag).stdout.strip() not in ("", "0")


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
    wait_until(lambda: back_in_pool(host, second), timeout=30)


def test_host_off_the_network_is_routed_around(host, apps, db):
    second = apps[1]
    # Every packet in or out of the host dropped, as when a machine dies: the balancer's
    # connections to it time out (nothing refuses them).
    dead = "table inet dead { chain in { type filter hook input priority -10; policy drop; }; " \
           "chain out { type filter hook output priority -10; policy drop; }; }"

    def cut():
        second.run_expect([0], "nft %s", dead)
        time.sleep(30)
        return None

    try:
        _, load, acked = under_load(host, "host-unreachable", cut, seconds=150)
    finally:
        second.run_expect([0], "nft delete table inet dead")
    assert not acked - notes_in_database(db)
    # New requests that met the dead host waited for the connect timeout, then went to
    # the other host, and once the balancer marked it down none went there. Requests
    # already in flight to it when it died are lost with it: they end with a 504 after
    # the app's read timeout (10 s here). At 100 requests/s a few ms each, that is a
    # request or two, and one of the two 5-second requests at most.
    assert load["errors"] == 0 and load["non_2xx"] <= 3, load
    assert load["long_failed"] <= 1, load
    # It serves through the balancer again once it is back (fail_timeout after it failed).
    wait_until(lambda: back_in_pool(host, second), timeout=30)
