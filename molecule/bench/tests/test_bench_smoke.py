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
from servers import SERVERS, WorkerClass
from testlib import http

BENCH = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "bench" / "bench.py"


@pytest.fixture(scope="module")
def smoke(host, tmp_path_factory):
    """The smoke run, what it wrote, and the stack before it."""
    out = tmp_path_factory.mktemp("smoke")
    before = {"release": http(host, "https://127.0.0.1/healthz").json()["release"],
              "nginx": host.check_output("nginx -T 2>/dev/null | sha256sum")}
    # The temporary server blocks, as Nginx loaded them during the run: a copy taken
    # when the first run starts (wrk runs only after the setup's reload).
    copy = "cp /etc/nginx/conf.d/zz-bench.conf /root/zz-bench.conf.seen"
    host.run("rm -f /root/zz-bench.conf.seen")
    watcher = subprocess.Popen(
        ["docker", "exec", host.backend.host, "sh", "-c",
         f"for i in $(seq 1 600); do pgrep -x wrk >/dev/null && {copy} && exit 0; "
         "sleep 0.5; done"])
    result = subprocess.run([sys.executable, str(BENCH), "--smoke", "--container", host.backend.host,
                             "--out", str(out)], capture_output=True, text=True, timeout=900)
    watcher.wait(timeout=60)
    print(result.stdout[-3000:], result.stderr[-3000:])
    return {"result": result, "out": out, "before": before,
            "seen_conf": host.file("/root/zz-bench.conf.seen").content_string}


def test_smoke_run_passes_its_own_check_of_the_output(smoke):
    # Exit 0 includes bench.py's own check of the output (bench.py --check).
    assert smoke["result"].returncode == 0


def test_every_server_of_the_registry_is_measured_on_its_loads(smoke):
    data = json.loads((smoke["out"] / "latest.json").read_text())
    runs = {(r["server"], r["route"], r["concurrency"], r["scenario"]): r for r in data["runs"]}
    assert {r["server"] for r in data["runs"]} == {server.name for server in SERVERS}
    for server in SERVERS:
        for route, concurrency in server.loads:
            assert (server.name, route, concurrency, "normal") in runs
        assert ((server.name, "/", 50, "slowloris") in runs) == server.slowloris, server.name
        # Every server answered on `/` at c50.
        assert runs[(server.name, "/", 50, "normal")]["requests"] > 0, server.name


def test_the_stack_answers_both_routes_and_refuses_nothing(smoke):
    """Every load of the stack was run; it answered on both routes; no run got a
    4xx/5xx (a limit's 429: the loopback client must be exempt) or a refused or
    dropped connection. How fast is not asserted: a one-second run at c200 over TLS
    on a busy 2-core machine can end before any handshake does (stalled, timeout)."""
    data = json.loads((smoke["out"] / "latest.json").read_text())
    stack = [r for r in data["runs"] if r["server"] == "stack"]
    assert {(r["route"], r["concurrency"], r["scenario"]) for r in stack} == {
        ("/", 50, "normal"), ("/", 50, "slowloris"), ("/", 200, "normal"),
        ("/slow?ms=100", 50, "normal"), ("/slow?ms=100", 200, "normal")}
    for route in ("/", "/slow?ms=100"):
        assert any(r["requests"] > 0 for r in stack if r["route"] == route), route
    for r in stack:
        kinds = r["error_kinds"]
        assert kinds["status"] == kinds["connect"] == kinds["read"] == kinds["write"] == 0, r
    assert [c["status"] for c in data["checks"]] and all(
        c["status"] in ("PASS", "FAIL") for c in data["checks"])
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


def test_the_real_stack_is_left_as_it_was(host, smoke):
    assert host.run("systemctl list-units --all --plain --no-legend 'bench-*'").stdout.strip() == ""
    assert not host.file("/etc/nginx/conf.d/zz-bench.conf").exists
    assert host.check_output("nginx -T 2>/dev/null | sha256sum") == smoke["before"]["nginx"]
    assert http(host, "https://127.0.0.1/healthz").json()["release"] == smoke["before"]["release"]
