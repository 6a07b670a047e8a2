"""`make bench` in short: bench/bench.py --smoke against this instance. It proves that
the benchmark still runs every server of its registry (bench/servers.py) and writes
well-formed results, that the servers behind our Nginx get the stack's proxy
settings from the vhost the role rendered, and that it leaves the real stack as it
found it. No timing is asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import targets
from servers import SERVERS, WorkerClass, by_name
from testlib import http

BENCH = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "bench" / "bench.py"


@pytest.fixture(scope="module")
def smoke(host, tmp_path_factory):
    """The smoke run, what it wrote, and the stack before it."""
    out = tmp_path_factory.mktemp("smoke")
    before = {"release": http(host, "https://127.0.0.1/healthz").json()["release"],
              "nginx": host.check_output("nginx -T 2>/dev/null | sha256sum")}
    # When the first run starts (wrk runs only after the setup's reload): the temporary
    # server blocks, as Nginx loaded them, and the CPUs that wrk, Nginx and the app's
    # Gunicorn (master and workers) may run on, one "name cpus" line each.
    copy = "cp /etc/nginx/conf.d/zz-bench.conf /root/zz-bench.conf.seen"
    host.run("rm -f /root/zz-bench.conf.seen /root/affinity.seen")
    watcher = subprocess.Popen(
        ["docker", "exec", host.backend.host, "sh", "-c",
         f"for i in $(seq 1 600); do wrk=$(pgrep -x wrk) && {copy} && break; sleep 0.5; done; "
         f"{affinities(host, wrk='$wrk')} > /root/affinity.seen"])
    result = subprocess.run([sys.executable, str(BENCH), "--smoke", "--container", host.backend.host,
                             "--out", str(out)], capture_output=True, text=True, timeout=900)
    watcher.wait(timeout=60)
    print(result.stdout[-3000:], result.stderr[-3000:])
    return {"result": result, "out": out, "before": before,
            "seen_conf": host.file("/root/zz-bench.conf.seen").content_string,
            "seen_cpus": host.file("/root/affinity.seen").content_string.split("\n")}


def affinities(host, **pids):
    """A shell command that prints "name cpus" for each of Nginx's processes, the app's
    serving Gunicorn and its workers, and the given pids (name=pid)."""
    service = f"hello-{host.check_output('readlink /srv/hello/app.sock').rsplit('-', 1)[1].split('.')[0]}"
    master = f"$(systemctl show --property MainPID --value {service}.service)"
    named = " ".join(f"{name}:{pid}" for name, pid in pids.items())
    return (f"for p in $(pgrep -x nginx | sed 's/^/nginx:/') gunicorn:{master} "
            f"$(pgrep -P {master} | sed 's/^/gunicorn:/') {named}; do "
            "echo ${p%%:*} $(taskset -c -p ${p#*:} | awk '{print $NF}'); done")


def test_smoke_run_passes_its_own_check_of_the_output(smoke):
    # Exit 0 includes bench.py's own check of the output (bench.py --check).
    assert smoke["result"].returncode == 0


def test_every_ratio_is_reported_with_its_rounds_in_its_format(smoke):
    data = json.loads((smoke["out"] / "latest.json").read_text())
    assert targets.check_format(data["ratios"], [r.name for r in targets.RATIOS]) == []
    assert data["rounds"] == 2
    # Every run was made in each round.
    assert all([r["round"] for r in run["rounds"]] == [1, 2] for run in data["runs"])
    summary = (smoke["out"] / "summary.md").read_text()
    for ratio in data["ratios"]:
        assert f"`{ratio['name']}`" in summary


def cpu_set(text):
    """taskset's CPU list ("0,1", "1-3") as a set of ints."""
    cpus = set()
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def test_the_load_generator_and_the_servers_ran_on_cpus_of_their_own(host, smoke):
    """During the run, wrk on the first CPU, Nginx and the app's Gunicorn (master and
    workers) on the others; afterwards the stack is back on every CPU."""
    every = cpu_set(host.check_output("taskset -c -p 1 | awk '{print $NF}'"))
    assert len(every) >= 2  # the CI machine has 2 cores, so does the container
    data = json.loads((smoke["out"] / "latest.json").read_text())
    load, servers = cpu_set(data["pinning"]["load"]), cpu_set(data["pinning"]["servers"])
    assert load == {min(every)} and servers == every - load
    seen = [(name, cpu_set(cpus)) for name, cpus in (line.split(" ", 1) for line in smoke["seen_cpus"] if line)]
    assert {name for name, _ in seen} == {"wrk", "nginx", "gunicorn"}, seen
    assert all(cpus == (load if name == "wrk" else servers) for name, cpus in seen), seen
    after = [line.split(" ", 1) for line in host.check_output(affinities(host)).splitlines()]
    assert len(after) >= 3 and all(cpu_set(cpus) == every for _, cpus in after), after


def test_every_server_of_the_registry_is_measured_on_its_loads(smoke):
    data = json.loads((smoke["out"] / "latest.json").read_text())
    runs = {(r["server"], r["route"], r["concurrency"], r["scenario"]): r for r in data["runs"]}
    assert {r["server"] for r in data["runs"]} == {server.name for server in SERVERS}
    assert set(runs) == {(server.name, *load) for server in SERVERS for load in server.loads}
    for server in SERVERS:
        # Every server answered.
        assert any(runs[(server.name, *load)]["requests"] > 0 for load in server.loads), server.name


def test_the_stack_answers_every_route_and_refuses_nothing(smoke):
    """Every load of the stack was run; it answered on every route; no run got a
    4xx/5xx (a limit's 429: the loopback client must be exempt) or a refused or
    dropped connection. How fast is not asserted: a one-second run at c200 over TLS
    on a busy 2-core machine can end before any handshake does (stalled, timeout)."""
    data = json.loads((smoke["out"] / "latest.json").read_text())
    stack = [r for r in data["runs"] if r["server"] == "stack"]
    assert {(r["route"], r["concurrency"], r["scenario"]) for r in stack} == set(by_name("stack").loads)
    for route in ("/", "/page", "/slow?ms=100"):
        assert any(r["requests"] > 0 for r in stack if r["route"] == route), route
    for scenario in ("h2", "paced", "hol", "slowloris"):
        assert any(r["requests"] > 0 for r in stack if r["scenario"] == scenario), scenario
    # Refused, reset or failed requests and 4xx/5xx, by wrk's kinds and h2load's.
    refused = ("status", "connect", "read", "write", "failed", "errored")
    for r in stack:
        assert not any(r["error_kinds"].get(kind) for kind in refused), r
    # Every target was measured (the ratios' own format: the test above).
    assert [c["status"] for c in data["checks"]] and all(
        c["status"] in ("PASS", "FAIL") for c in data["checks"]), data["checks"]
    assert (smoke["out"] / "summary.md").read_text().count("**") >= 2 * len(data["checks"])


def test_servers_behind_our_nginx_proxy_as_the_rendered_vhost_does(host, smoke):
    """Each worker class's server block holds every line of the vhost's proxying
    `location /` (but its proxy_pass and the per-client limits), and the vhost's
    upstream keepalive."""
    vhost = host.file("/etc/nginx/sites-enabled/hello.conf").content_string
    location = vhost.split("\n    location / {\n")[-1].split("\n    }\n")[0]
    wanted = [line.strip() for line in location.splitlines()
              if line.strip() and not line.strip().startswith(("#", "proxy_pass ", "limit_"))]
    assert "proxy_http_version 1.1;" in wanted
    keepalive = next(line.strip() for line in vhost.splitlines()
                     if line.strip().startswith("keepalive "))
    seen = smoke["seen_conf"]
    classes = [s for s in SERVERS if isinstance(s, WorkerClass)]
    assert classes
    for server in classes:
        block = seen.split(f"# {server.name}:")[1].split("\n# ")[0]
        lines = {line.strip() for line in block.splitlines()}
        assert not [line for line in wanted if line not in lines], server.name
        assert keepalive in lines
        assert not any(line.startswith("limit_") for line in lines)


def test_two_apps_for_a_1cpu_vps_both_answer_and_all_their_processes_are_counted(smoke):
    """memory_1cpu_mb: both apps served /page at once, and the memory added up is that
    of Nginx and of every master and worker of the two (2 x (1 + 3) processes)."""
    data = json.loads((smoke["out"] / "latest.json").read_text())
    two = next(r for r in data["runs"] if r["server"] == "two-apps-1cpu")
    assert two["requests"] > 0 and [b["requests"] > 0 for b in two["memory"]["beside"]] == [True]
    load = two["memory"]["load"]
    assert load["app"]["processes"] == 2 * (1 + 3) and load["nginx"]["processes"] >= 2
    assert all(r["memory"]["load"]["app"]["processes"] == 8 for r in two["rounds"])
    memory = next(r for r in data["ratios"] if r["name"] == "memory_1cpu_mb")
    assert memory["rounds"] == pytest.approx([r["memory"]["load"]["nginx"]["pss_mb"]
                                              + r["memory"]["load"]["app"]["pss_mb"] for r in two["rounds"]])


def test_the_real_stack_is_left_as_it_was(host, smoke):
    assert host.run("systemctl list-units --all --plain --no-legend 'bench-*'").stdout.strip() == ""
    assert not host.file("/etc/nginx/conf.d/zz-bench.conf").exists
    assert host.check_output("nginx -T 2>/dev/null | sha256sum") == smoke["before"]["nginx"]
    assert http(host, "https://127.0.0.1/healthz").json()["release"] == smoke["before"]["release"]
