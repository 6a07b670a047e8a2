"""The load balancer, as a client meets it: HTTPS answered by both app hosts in turn,
the real client address and scheme passed on (a forged X-Forwarded-For is not
believed), an unknown host name refused; the app hosts' HTTP port open to the
balancer only (the firewall); and the pool entry of the nginx role (what a rolling
deploy calls): drained, a backend gets no request once the requests it had in flight
have finished, serving puts it back, and a second run changes nothing."""

import json
import re
import shlex
import time
import uuid

import pytest
from conftest import APPS, LB
from testlib import http, run_playbook, wait_until

testinfra_hosts = [f"ansible://{LB}"]
# Through the balancer: hello.test is 127.0.0.1 on it.
URL = "https://hello.test"

# The pool entry as the app hosts' plays call it (playbooks/tasks/pool-*.yml).
POOL_PLAYBOOK = """\
- name: Take an app host out of the balancers' pool, or put it back
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Run the pool entry of the nginx role
      ansible.builtin.include_role:
        name: nginx
        tasks_from: pool
"""


@pytest.fixture(scope="module")
def pool_playbook(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "pool.yml"
    path.write_text(POOL_PLAYBOOK)
    return str(path)


def pool(lb, playbook, backend, state):
    """Run the pool entry on backend's play: (result, that host's changed count)."""
    result = run_playbook(lb, playbook, "-e", json.dumps({"nginx_pool_state": state}), limit=backend)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    changed = re.search(rf"^{re.escape(backend)}\s*:.*\bchanged=(\d+)", result.stdout, re.M)
    return result, int(changed.group(1))


def address_of(lb, name):
    """A cluster host's address, as the balancer resolves its name."""
    return lb.check_output("getent hosts %s", name).split()[0]


def probes_seen(apps, tag, count):
    """How many requests whose URL carries tag each app host's Nginx logged, once the
    count sent are all in the logs (Nginx writes a line within a second)."""
    def seen():
        counts = [int(app.run("grep -c -- %s /var/log/nginx/access.log", tag).stdout.strip() or 0)
                  for app in apps]
        return counts if sum(counts) >= count else None
    return wait_until(seen, timeout=10)


def send_probes(lb, count):
    """count requests through the balancer, each marked with one tag in its URL;
    return the tag. Every one must succeed."""
    tag = f"probe-{uuid.uuid4().hex[:12]}"
    for n in range(count):
        response = http(lb, f"{URL}/healthz?{tag}={n}")
        assert response.status == 200, response.body
    return tag


def test_https_is_answered_by_both_app_hosts_in_turn(host, apps):
    response = http(host, f"{URL}/healthz")
    assert response.status == 200 and response.json()["status"] == "ok", response.body
    # The balancer's own security headers, once each (the app hosts' plain HTTP sends no HSTS).
    assert response.headers["strict-transport-security"].startswith("max-age="), response.headers
    assert response.headers["x-content-type-options"] == "nosniff", response.headers
    tag = send_probes(host, 10)
    seen = probes_seen(apps, tag, 10)
    # Round robin: both hosts answer, and nothing is lost or sent twice.
    assert sum(seen) == 10 and min(seen) >= 3, seen


def test_app_sees_the_real_client_and_https_not_a_forged_address(host, db):
    lb_address = address_of(host, LB)
    client = http(db, f"{URL}/client", "--connect-to", f"hello.test:443:{lb_address}:443",
                  "-H", "X-Forwarded-For: 203.0.113.66", "-H", "X-Forwarded-Proto: http")
    assert client.status == 200, client.body
    seen = client.json()
    assert seen["scheme"] == "https" and seen["host"] == "hello.test", seen
    # The client's own address on the private network: not the balancer's, not the forged one.
    assert seen["remote_addr"] not in (lb_address, "203.0.113.66"), seen
    assert f" {seen['remote_addr']}/" in db.check_output("ip -o addr show"), seen


def test_unknown_host_name_is_refused_at_the_balancer(host):
    # HTTPS: no certificate, the handshake is refused; HTTP: the connection is closed.
    assert http(host, "https://evil.test/", "--resolve", "evil.test:443:127.0.0.1").status == 0
    assert http(host, "http://127.0.0.1/", "-H", "Host: evil.test").status == 0
    # The known name on plain HTTP is redirected to HTTPS.
    assert http(host, "http://hello.test/").status == 301


def test_app_hosts_take_http_from_the_balancer_only(host, db):
    for name in APPS:
        address = address_of(host, name)
        assert http(host, f"http://{address}/healthz", "-H", "Host: hello.test").status == 200
        # Dropped, not refused: the client waits in vain.
        refused = db.run(shlex.join(["curl", "-sS", "-m", "2", "-o", "/dev/null", "-H", "Host: hello.test",
                                     f"http://{address}/healthz"]))
        assert refused.rc != 0, f"{name} answered a host that is not a load balancer"


# A stream of slow requests through the balancer: one 7-second request every half
# second (round robin: every other one to each app host), for 90 s at most or until
# the stop file appears; each answer's status is one line of the output file. However
# long Ansible takes to start, a drain meets a few of them in flight.
SLOW_STREAM = """\
for n in $(seq 180); do
  [ -e {stop} ] && break
  curl -sk -m 30 -o /dev/null -w '%{{http_code}}\\n' {url}/slow?ms=7000 >> {out} &
  sleep 0.5
done
wait
touch {done}
"""


def test_drained_backend_gets_no_request_until_it_serves_again(host, apps, pool_playbook):
    drained, other = APPS
    try:
        run = f"/tmp/slow-{uuid.uuid4().hex[:8]}"
        stream = SLOW_STREAM.format(stop=f"{run}.stop", url=URL, out=f"{run}.out", done=f"{run}.done")
        host.run_expect([0], "systemd-run --collect --property RuntimeMaxSec=150 sh -c %s", stream)
        time.sleep(2)
        result, changed = pool(host, pool_playbook, drained, "drained")
        host.run_expect([0], "touch %s.stop", run)
        assert changed > 0, result.stdout[-2000:]
        # The drain waited for the requests in flight to the backend...
        assert "FAILED - RETRYING" in result.stdout, result.stdout[-3000:]
        # ...which finished well, as did every other.
        wait_until(lambda: host.file(f"{run}.done").exists, timeout=60)
        answers = host.file(f"{run}.out").content_string.split()
        assert len(answers) >= 6 and set(answers) == {"200"}, answers
        assert host.run("grep -l ' down;' /etc/nginx/pools/hello/%s.conf", drained).rc == 0

        # Out of the pool: every request goes to the other host.
        tag = send_probes(host, 6)
        assert probes_seen(apps, tag, 6) == [0, 6], other
        # Again: nothing changes, nothing reloads.
        assert pool(host, pool_playbook, drained, "drained")[1] == 0
    finally:
        _, changed = pool(host, pool_playbook, drained, "serving")
    assert changed > 0
    assert pool(host, pool_playbook, drained, "serving")[1] == 0
    tag = send_probes(host, 6)
    assert min(probes_seen(apps, tag, 6)) >= 2


def test_a_run_of_the_balancer_play_keeps_a_drained_backend_drained(host, pool_playbook):
    drained = APPS[1]
    try:
        pool(host, pool_playbook, drained, "drained")
        result = run_playbook(host, "../../playbooks/loadbalancers.yml", "--tags", "nginx", limit="all")
        assert result.returncode == 0, result.stdout[-3000:]
        recap = re.search(rf"^{LB}\s*:.*\bchanged=(\d+)", result.stdout, re.M)
        assert recap.group(1) == "0", result.stdout[-3000:]
        assert host.run("grep -l ' down;' /etc/nginx/pools/hello/%s.conf", drained).rc == 0
    finally:
        pool(host, pool_playbook, drained, "serving")


def test_balancer_config_passes_nginx_t(host):
    assert host.run("nginx -t").rc == 0
