"""Measuring: the plan of runs drawn from the servers, wrk and the slowloris clients
in the VPS, the provisioning timings (provision.sh). Returns plain data (the runs,
the stack's config, the machine) for report.py to write."""

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nginxconf
from servers import stack_proxy
from vps import NGINX_CONF, NGINX_LOG, WORK

HERE = Path(__file__).resolve().parent

# The order of the loads in each phase of the plan.
LOADS = (("/", 50), ("/", 200), ("/slow?ms=100", 50), ("/slow?ms=100", 200))
MIRRORED = ("/", 50)  # the load whose runs are repeated in reverse order (A B .. B A)


@dataclass(frozen=True)
class Settings:
    duration: int  # seconds per measured run
    warmup: int  # seconds of unrecorded load before each
    slowloris: int  # slow connections in the slowloris scenario


@dataclass(frozen=True)
class Run:
    server: object  # a servers.Server
    route: str
    concurrency: int
    scenario: str = "normal"  # or "slowloris"


def plan(servers):
    """The runs, in order. The servers in the chart first, then the others (the worker
    classes, compared with each other); within each group, load by load (LOADS),
    every server measured on that load, in the list's order, so that the servers a
    target compares run one right after the other and the noise of a shared machine
    hits them alike. A server's slowloris run follows its `/` c50 run. The `/` c50
    runs are then repeated in reverse order (A B .. B A), and each result is the mean
    of its two runs, so that a drift hits both sides alike."""
    runs = []
    for group in ([s for s in servers if s.color], [s for s in servers if not s.color]):
        for route, concurrency in LOADS:
            phase = []
            for server in group:
                if (route, concurrency) in server.loads:
                    phase.append(Run(server, route, concurrency))
                    if server.slowloris and (route, concurrency) == ("/", 50):
                        phase.append(Run(server, route, concurrency, "slowloris"))
            if (route, concurrency) == MIRRORED:
                phase += [run for run in reversed(phase) if run.scenario == "normal"]
            runs += phase
    return runs


def find(runs, server, route, concurrency, scenario="normal"):
    """The result of a server's run (a dict of latest.json's runs), or None."""
    return next((r for r in runs if (r["server"], r["route"], r["concurrency"], r["scenario"])
                 == (server, route, concurrency, scenario)), None)


# --- setting up and cleaning up the VPS ----------------------------------------------

def setup(vps, servers):
    """wrk, the scripts and the servers' blocks in our Nginx (checked with nginx -t)."""
    print(f"setup: wrk and the temporary servers' config in {vps.container}")
    vps.sh("command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; "
           "apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }", timeout=600)
    cleanup(vps, servers)  # anything left over by an interrupted run
    vps.sh(f"mkdir -p {WORK}")
    vps.put(f"{WORK}/report.lua", (HERE / "wrk_report.lua").read_text())
    vps.put(f"{WORK}/slowloris.py", (HERE / "slowloris.py").read_text())
    blocks = [server.nginx_config(vps) for server in servers]
    vps.put(NGINX_CONF, "# Temporary, written by bench/bench.py and removed when it ends.\n"
            + "\n".join(block for block in blocks if block))
    out = vps.sh(f"nginx -t 2>&1 || {{ rm -f {NGINX_CONF}; exit 1; }}", check=False)
    if "test is successful" not in out:
        raise RuntimeError(f"the temporary server blocks fail nginx -t:\n{out}")
    vps.sh("systemctl reload nginx")


def cleanup(vps, servers):
    """Stop everything the benchmark started; put the real stack back as it was."""
    for server in servers:
        server.stop(vps)
    vps.sh(f"if [ -f {NGINX_CONF} ]; then rm -f {NGINX_CONF}; nginx -t -q && systemctl reload nginx; fi; "
           f"rm -rf {WORK} {NGINX_LOG}", check=False)


# --- measuring -----------------------------------------------------------------------

def measure_all(vps, servers, settings):
    """Start the servers, make every run of the plan, stop them: the runs' results."""
    results = []
    try:
        setup(vps, servers)
        for server in servers:
            server.start(vps)
        for run in plan(servers):
            if run.scenario == "slowloris":
                result = measure_under_slowloris(vps, run, settings)
            else:
                result = measure(vps, run, settings)
            first = find(results, result["server"], run.route, run.concurrency, run.scenario)
            if first:
                results[results.index(first)] = merge(first, result)
            else:
                results.append(result)
            print(f"{result['server']:16} {run.route:13} c{run.concurrency:<4} {run.scenario:10} "
                  f"{result['rps']:>9,.0f} rps  p50 {result['p50_ms']:7.1f} ms  "
                  f"p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}", flush=True)
    finally:
        cleanup(vps, servers)
    return results


def wrk(vps, url, concurrency, seconds):
    """One wrk run; wrk_report.lua prints its counters as JSON."""
    out = vps.sh(f"wrk -t2 -c{concurrency} -d{seconds}s --timeout 2s --latency "
                 f"-s {WORK}/report.lua '{url}'", timeout=seconds + 60)
    line = next((line for line in out.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result from wrk on {url}:\n{out}")
    return json.loads(line.split(" ", 1)[1])


def measure(vps, run, settings):
    url = run.server.url(vps) + run.route
    if settings.warmup:
        wrk(vps, url, run.concurrency, settings.warmup)
    before = cpu_seconds(vps)
    r = wrk(vps, url, run.concurrency, settings.duration)
    after = cpu_seconds(vps)
    seconds = r["duration_us"] / 1e6
    # wrk counts no error for a request that never gets an answer: when none did,
    # count every connection as one.
    stalled = run.concurrency if r["requests"] == 0 else 0
    return {
        "server": run.server.name, "route": run.route, "concurrency": run.concurrency,
        "scenario": run.scenario,
        # Answers with a 2xx/3xx status per second (wrk counts 4xx/5xx as errors).
        "rps": round((r["requests"] - r["status"]) / seconds, 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
        # Socket errors (connect, read, write, answer after the 2 s timeout), 4xx/5xx.
        "errors": r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"] + stalled,
        # The same, by kind ("stalled": no answer at all in the run).
        "error_kinds": {"connect": r["connect"], "read": r["read"], "write": r["write"],
                        "timeout": r["timeout"], "status": r["status"], "stalled": stalled},
        "requests": r["requests"],
        # CPU seconds used during the run by Nginx and by the Python servers.
        "cpu_s": {k: round(after[k] - before[k], 2) for k in after},
    }


def cpu_seconds(vps):
    """CPU seconds (user + system) used so far by the container's Nginx processes and
    by its Python servers (gunicorn, flask); only the server under test is busy."""
    out = vps.sh("cat /proc/[0-9]*/stat 2>/dev/null || true")
    total = {"nginx": 0.0, "python": 0.0}
    for line in out.splitlines():
        comm, _, rest = line.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        key = "nginx" if comm == "nginx" else "python" if comm in ("gunicorn", "flask") else None
        if key and len(fields) > 12:
            total[key] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def merge(first, second):
    """The mean of two runs of the same thing (counts added up)."""
    both = dict(first, repeats=2)
    for key in ("rps", "p50_ms", "p99_ms"):
        both[key] = round((first[key] + second[key]) / 2, 2)
    for key in ("errors", "requests"):
        both[key] = first[key] + second[key]
    both["cpu_s"] = {k: round(first["cpu_s"][k] + second["cpu_s"][k], 2) for k in first["cpu_s"]}
    both["error_kinds"] = {k: first["error_kinds"][k] + second["error_kinds"][k]
                           for k in first["error_kinds"]}
    return both


def measure_under_slowloris(vps, run, settings):
    """Normal clients on the run's route while settings.slowloris connections trickle
    their headers."""
    url = run.server.url(vps)
    tls = ["--tls"] if url.startswith("https:") else []
    seconds = settings.warmup + settings.duration + 4
    loris = subprocess.Popen(
        ["docker", "exec", vps.container, "python3", f"{WORK}/slowloris.py", url.rsplit(":", 1)[1],
         *tls, "--connections", str(settings.slowloris), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, text=True)
    try:
        ready = loris.stdout.readline().split()  # "ready N PID" once all are open
        time.sleep(1)
        result = measure(vps, run, settings)
        if len(ready) == 3:
            vps.sh(f"kill {ready[2]}", check=False)  # done: it stops within a second
        stats = json.loads(loris.stdout.readline() or "{}")
        stats["opened"] = int(ready[1]) if len(ready) == 3 else 0
        result["slowloris"] = stats
        return result
    finally:
        loris.wait(timeout=seconds + 30)


# --- what was measured -----------------------------------------------------------------

def machine(vps):
    info = vps.sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc; "
                  "awk '/MemTotal/ {print int($2/1048576+0.5)}' /proc/meminfo; uname -r; "
                  "cat /etc/debian_version; nginx -v 2>&1 | cut -d/ -f2; "
                  f"{vps.venv}/bin/gunicorn --version | awk '{{print $NF}}'; "
                  f"{vps.venv}/bin/python --version | awk '{{print $2}}'; cut -d' ' -f1-3 /proc/loadavg")
    cpu, cores, mem, kernel, debian, nginx, gunicorn, python, load = info.strip().split("\n")
    return (f"{cpu.strip()}, {cores} cores, {mem} GiB, Linux {kernel}; container {vps.container} "
            f"(Debian {debian}); nginx {nginx}, gunicorn {gunicorn.strip('()')}, Python {python}; "
            f"load average before the run {load}")


def stack_config(vps):
    """The settings of the stack under test, as the roles rendered them: Gunicorn's from
    the app's gunicorn.conf.py (run by Python), Nginx's from the app's vhost (parsed)."""
    found = vps.gunicorn_settings("worker_class", "workers", "threads", "worker_connections")
    # How many requests each worker serves at once, in words (Gunicorn's defaults).
    found["per_worker"] = (f"{found['threads'] or 1} threads" if found["worker_class"] == "gthread"
                           else f"{found['worker_connections'] or 1000} connections"
                           if found["worker_class"] == "gevent" else "1 request")
    _, upstream = stack_proxy(vps)
    keepalive = nginxconf.find(upstream.block, "keepalive")
    found["nginx_upstream_keepalive"] = int(keepalive.args[0]) if keepalive else 0
    found["url"] = vps.stack_url
    found["slot"] = vps.slot
    # A per-client rate limit turns most of a one-client load test into 429s.
    vhost = vps.read_nginx(vps.vhost)
    found["rate_limited"] = any(d.name in ("limit_req", "limit_conn") for d in nginxconf.walk(vhost))
    return found


# --- provisioning ------------------------------------------------------------------------

def provisioning():
    """bench/provision.sh: a fresh converge, an idempotent re-run and three code-only
    deploys, timed."""
    with tempfile.TemporaryDirectory(prefix="bench-provision.") as logdir:
        proc = subprocess.run([str(HERE / "provision.sh"), logdir], text=True)
        if proc.returncode != 0 or not Path(logdir, "times").exists():
            error = Path(logdir, "error")
            reason = error.read_text().strip() if error.exists() else f"exit {proc.returncode}"
            return {"error": f"bench/provision.sh failed: {reason}"}
        return read_provisioning(logdir)


def read_provisioning(logdir):
    """The times provision.sh wrote, and the slowest tasks by profile_tasks."""
    result = {}
    for line in Path(logdir, "times").read_text().splitlines():
        key, _, value = line.partition("=")
        result[key] = float(value) if key.endswith("_s") else value
    if result["rerun_changed"].isdigit():
        result["rerun_changed"] = int(result["rerun_changed"])
    # deploy1_s, deploy2_s, ...: each deploy; deploy_s: their median, whose log
    # (deployN.log) gives the deploy's tasks.
    result["deploys_s"] = [result.pop(k) for k in sorted(result) if re.fullmatch(r"deploy\d+_s", k)]
    median = next(i for i, s in enumerate(result["deploys_s"], 1) if s == result["deploy_s"])
    logs = {"converge": "converge", "rerun": "rerun", "deploy": f"deploy{median}"}
    for run, log in logs.items():
        recap = Path(logdir, f"{log}.log").read_text().split("TASKS RECAP")[-1]
        tasks = re.findall(r"^(.+?) -{3,} ([\d.]+)s$", recap, re.M)
        result[f"tasks_{run}"] = len(tasks)
        result[f"tasks_{run}_s"] = round(sum(float(s) for _, s in tasks), 1)
        result[f"slowest_tasks_{run}"] = [{"task": t, "s": float(s)} for t, s in tasks[:5]]
    return result
