"""`make bench` in short: bench/bench.py --smoke against this instance. It proves that
the benchmark still runs every server and writes well-formed results, and that it
leaves the real stack as it found it. No timing is asserted."""

import json
import os
import subprocess
import sys
from pathlib import Path

from testlib import http

BENCH = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "bench" / "bench.py"


def test_smoke_run_writes_well_formed_results_and_leaves_the_stack_as_it_was(host, tmp_path):
    served = http(host, "https://127.0.0.1/healthz").json()["release"]
    nginx_conf = host.check_output("nginx -T 2>/dev/null | sha256sum")

    env = dict(os.environ, BENCH_CONTAINER=host.backend.host, BENCH_OUT=str(tmp_path))
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], env=env,
                            capture_output=True, text=True, timeout=900)
    print(result.stdout[-3000:], result.stderr[-3000:])
    # Exit 0 includes bench.py's own check of the output (bench.py --check).
    assert result.returncode == 0

    data = json.loads((tmp_path / "latest.json").read_text())
    runs = {(r["server"], r["route"], r["concurrency"], r["scenario"]): r for r in data["runs"]}
    # Every server answered on `/` at c50; the stack answered everything it was sent,
    # in both scenarios and on both routes, without an error.
    for server in ("flask-dev", "gunicorn-direct", "stack", "recipe", "nginx-static", "nginx-minimal"):
        assert runs[(server, "/", 50, "normal")]["requests"] > 0, server
    stack = [r for r in data["runs"] if r["server"] == "stack"]
    assert {(r["route"], r["concurrency"], r["scenario"]) for r in stack} == {
        ("/", 50, "normal"), ("/", 50, "slowloris"), ("/", 200, "normal"),
        ("/slow?ms=100", 50, "normal"), ("/slow?ms=100", 200, "normal")}
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in stack), stack
    assert [c["status"] for c in data["checks"]] and all(
        c["status"] in ("PASS", "FAIL") for c in data["checks"])
    assert (tmp_path / "summary.md").read_text().count("**") >= 2 * len(data["checks"])

    # The temporary servers are gone and the real stack is untouched.
    assert host.run("systemctl list-units --all --plain --no-legend 'bench-*'").stdout.strip() == ""
    assert not host.file("/etc/nginx/conf.d/zz-bench.conf").exists
    assert host.check_output("nginx -T 2>/dev/null | sha256sum") == nginx_conf
    assert http(host, "https://127.0.0.1/healthz").json()["release"] == served
