"""Worker recycling (max_requests): each Gunicorn worker of an app is replaced by a
fresh one after so many requests (a slow leak never grows for long), and no request
fails or waits while workers are replaced under load."""

import time

from conftest import RATES, assert_unnoticed, extra_vars, playbook
from testlib import Load, http, main_pid, run_playbook, slot_unit, wait_until


def worker_pids(host):
    """The Gunicorn workers of the serving slot: the children of its master."""
    master = main_pid(host, f"{slot_unit(host, 'hello')}.service")
    return set(host.check_output("pgrep --parent %s", str(master)).split())


def get(host, count):
    """count requests to the serving slot's own socket, a connection each (as the
    role's health check makes them); each must answer 200. (Through Nginx, a retiring
    gevent worker also serves Nginx's idle kept-alive connections to it once more
    before it goes, so its last request is not ours to count.)"""
    socket = f"/run/{slot_unit(host, 'hello')}.sock"
    for _ in range(count):
        response = http(host, "http://localhost/healthz", "--unix-socket", socket)
        assert response.status == 200, response.body


def deploy(host, tmp_path, sources, **changes):
    result = run_playbook(host, playbook("deploy.yml"), "-e", extra_vars(tmp_path, src=sources["v2"], **changes))
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def test_a_worker_is_replaced_after_max_requests(host, sources, tmp_path):
    # One worker, so every request goes to it; it goes after 20 to 22 requests (the
    # jitter is 10% of max_requests).
    deploy(host, tmp_path, sources, workers=1, max_requests=20)
    # The deploy's health checks counted too: first let that worker go, so that the
    # one after it has served nothing yet.
    first = worker_pids(host)
    assert len(first) == 1
    for _ in range(23):
        get(host, 1)
        if worker_pids(host) - first:
            break
    fresh = wait_until(lambda: worker_pids(host) - first, timeout=40)
    wait_until(lambda: worker_pids(host) == fresh, timeout=40)
    # The fresh worker may have served one of the requests above while it took over
    # (sent between the old one's exit and its start): 17 more never reach its 20 to
    # 22, and 6 after those always pass them.
    get(host, 17)
    assert worker_pids(host) == fresh
    get(host, 6)
    replaced = wait_until(lambda: worker_pids(host) - fresh, timeout=40)
    assert len(replaced) == 1


def test_workers_are_replaced_under_load_and_no_request_notices(host, sources, tmp_path):
    # The default worker count, each replaced after 1,000 to 1,100 requests: at 300
    # requests/s, one worker every 3 to 4 s. (After 300, one a second, the workers'
    # start-up took a core of their own, and with another scenario on the 2 cores a
    # request waited 2.8 s for CPU.)
    deploy(host, tmp_path, sources, max_requests=1000)
    unit = slot_unit(host, "hello")
    before = worker_pids(host)
    since = host.check_output("date +%s")
    with Load(host, "max-requests", rate=RATES["high"]) as load:
        time.sleep(20)
    figures = load.record()
    assert_unnoticed(figures, minimum=5000)
    replaced = host.check_output("journalctl --unit %s.service --since @%s --output cat | "
                                 "grep -c 'Autorestarting worker after current request' || true", unit, since)
    assert int(replaced) >= figures["requests"] // 1100 // 2, (replaced, figures["requests"])
    assert worker_pids(host) != before
    # The same settings again: nothing to change.
    assert "changed=0" in deploy(host, tmp_path, sources, max_requests=1000).stdout
