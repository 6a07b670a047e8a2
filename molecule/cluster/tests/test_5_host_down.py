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


def outage(lb, app_host, phase, breaks, heals, lasts):
    """Under load through the balancer, break app_host with the command breaks for
    lasts seconds, then heal it: (the load's figures, the acknowledged note ids)."""
    def action():
        app_host.run_expect([0], breaks)
        time.sleep(lasts)

    try:
        _, load, acked = under_load(lb, phase, action, seconds=150)
    finally:
        app_host.run_expect([0], heals)
    return load, acked


def test_killed_nginx_is_routed_around(host, apps, db):
    second = apps[1]
    load, acked = outage(host, second, "nginx-killed", "systemctl kill --signal=KILL nginx.service",
                         "systemctl restart nginx.service", lasts=20)
    assert not acked - notes_in_database(db)
    # A refused connection sends the request to the other host, POSTs included (it
    # was never sent): nothing fails.
    assert load["errors"] == 0 and load["non_2xx"] == 0, load
    wait_until(lambda: back_in_pool(host, second), timeout=30)


def test_host_off_the_network_is_routed_around(host, apps, db):
    second = apps[1]
    # Every packet in or out of the host dropped, as when a machine dies: the balancer's
    # connections to it time out (nothing refuses them).
    dead = ("nft 'table inet dead { chain in { type filter hook input priority -10; policy drop; }; "
            "chain out { type filter hook output priority -10; policy drop; }; }'")
    load, acked = outage(host, second, "host-unreachable", dead, "nft delete table inet dead", lasts=30)
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
