"""Measuring: the plan of runs drawn from the servers, the load generators (wrk,
h2load) and the slowloris clients in the VPS, the provisioning timings (provision.sh).
Returns plain data (the runs, the stack's config, the machine) for report.py to
write."""

import contextlib
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nginxconf
from servers import stack_proxy
from vps import NGINX_CONF, NGINX_LOG, WORK

HERE = Path(__file__).resolve().parent

# Every load a server may be measured on, (route, concurrency, scenario), in the order
# of the plan's phases (servers.py says which of them each server gets). Scenarios:
#   normal     wrk: HTTP/1.1 with keep-alive, each connection asking again at once
#   slowloris  the same while slow clients hold connections open (slowloris.py)
#   h2         h2load: HTTP/2 over TLS, H2_STREAMS requests at once per connection
#   paced      h2load over HTTP/1.1 at PACED_RPS in all: latency with no CPU saturated
#   hol        wrk on the route while HOL_SLOW_CONNECTIONS more ask for HOL_SLOW_ROUTE
#   memory     wrk, and the memory of Nginx and of the server's processes before the
#              load and halfway through it
LOADS = (
    ("/", 50, "normal"), ("/", 50, "slowloris"), ("/", 50, "h2"),
    ("/page", 50, "normal"), ("/page", 50, "memory"), ("/page", 95, "normal"), ("/page", 95, "hol"),
    ("/", 4, "paced"),
    ("/", 200, "normal"), ("/slow?ms=100", 50, "normal"), ("/slow?ms=100", 200, "normal"),
)
SCENARIOS = ("normal", "slowloris", "h2", "paced", "hol", "memory")
H2_STREAMS = 4
PACED_RPS = 100
HOL_SLOW_ROUTE = "/slow?ms=1000"
HOL_SLOW_CONNECTIONS = 5


@dataclass(frozen=True)
class Settings:
    duration: int  # seconds per measured run
    warmup: int  # seconds of unrecorded load before each
    slowloris: int  # slow connections in the slowloris scenario
    rounds: int = 3  # times the whole plan is run, interleaved
    pin: bool = True  # load generators and servers on CPUs of their own


@dataclass(frozen=True)
class Run:
    server: object  # a servers.Server
    route: str
    concurrency: int
    scenario: str = "normal"  # one of SCENARIOS


def plan(servers, round_no=0):
    """One round's runs, in order: load by load (LOADS), every server that has that
    load, in the list's order, so that the servers a target compares run one right
    after the other and the noise of a shared machine hits them alike. Every other
    round runs the same in reverse order (A B .. B A), so that a drift over the
    rounds hits both sides of a comparison alike."""
    runs = [Run(server, *load) for load in LOADS for server in servers if load in server.loads]
    return runs if round_no % 2 == 0 else runs[::-1]


def find(runs, server, route, concurrency, scenario="normal"):
    """The result of a server's run (a dict of latest.json's runs), or None."""
    return next((r for r in runs if (r["server"], r["route"], r["concurrency"], r["scenario"])
                 == (server, route, concurrency, scenario)), None)


# --- setting up and cleaning up the VPS ----------------------------------------------

def setup(vps, servers):
    """wrk, the scripts and the servers' blocks in our Nginx (checked with nginx -t)."""
    print(f"setup: wrk, h2load and the temporary servers' config in {vps.container}")
    vps.sh("command -v wrk >/dev/null && command -v h2load >/dev/null || { "
           "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
           "apt-get install -y -qq wrk nghttp2-client >/dev/null; }", timeout=600)
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
    """Stop everything the benchmark started; put the real stack back as it was (on
    every CPU again)."""
    for server in servers:
        server.stop(vps)
    vps.pin_stack(None)
    vps.sh(f"if [ -f {NGINX_CONF} ]; then rm -f {NGINX_CONF}; nginx -t -q && systemctl reload nginx; fi; "
           f"rm -rf {WORK} {NGINX_LOG}", check=False)


# --- measuring -----------------------------------------------------------------------

def measure_all(vps, servers, settings):
    """Start the servers, pin them and the load generators to CPUs of their own, make
    every run of the plan settings.rounds times, stop them: the runs' results, each
    with its rounds (combine())."""
    measured = []
    try:
        setup(vps, servers)
        if settings.pin:
            vps.split_cpus()
        for server in servers:
            server.start(vps)
        if vps.server_cpus:
            vps.pin_stack(vps.server_cpus)
        for round_no in range(settings.rounds):
            for run in plan(servers, round_no):
                result = measure(vps, run, settings)
                measured.append(dict(result, round=round_no + 1))
                print(f"{round_no + 1}/{settings.rounds} {result['server']:16} {run.route:13} "
                      f"c{run.concurrency:<4} {run.scenario:10} {result['rps']:>9,.0f} rps  "
                      f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                      f"errors {result['errors']}", flush=True)
    finally:
        cleanup(vps, servers)
    return combine(measured)


def combine(measured):
    """One result per server, route, concurrency and scenario: the median of its rounds'
    rps, p50 and p99, its counts added up, and each round's figures under "rounds"."""
    runs = []
    for r in measured:
        key = (r["server"], r["route"], r["concurrency"], r["scenario"])
        if not find(runs, *key):
            same = [m for m in measured if (m["server"], m["route"], m["concurrency"], m["scenario"]) == key]
            runs.append(merge(same))
    return runs


def merge(rounds):
    """The rounds of one run: medians, sums, and the rounds' own figures."""
    first = rounds[0]
    both = {k: v for k, v in first.items() if k != "round"}
    for key in ("rps", "p50_ms", "p99_ms"):
        both[key] = round(statistics.median(r[key] for r in rounds), 2)
    for key in ("errors", "requests"):
        both[key] = sum(r[key] for r in rounds)
    both["cpu_s"] = {k: round(sum(r["cpu_s"][k] for r in rounds), 2) for k in first["cpu_s"]}
    both["error_kinds"] = {k: sum(r["error_kinds"][k] for r in rounds) for k in first["error_kinds"]}
    side = first["scenario"]  # slowloris, hol, memory: the side load's figures, under its name
    both["rounds"] = [{k: r[k] for k in ("round", "rps", "p50_ms", "p99_ms", "errors", "requests",
                                         "nginx_us_per_request", side) if k in r} for r in rounds]
    per_request = [r["nginx_us_per_request"] for r in rounds if r["nginx_us_per_request"] is not None]
    both["nginx_us_per_request"] = round(statistics.median(per_request), 1) if per_request else None
    if side in first:
        both[side] = merge_side([r[side] for r in rounds])
    return both


def merge_side(sides):
    """A side load's figures over the rounds: the median of each number (in nested
    figures and lists of them too), the rest as the first round has it."""
    merged = {}
    for key, value in sides[0].items():
        values = [s.get(key) for s in sides]
        if isinstance(value, dict):
            merged[key] = merge_side([v or {} for v in values])
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            merged[key] = [merge_side([(v or [])[i] if i < len(v or []) else {} for v in values])
                           for i in range(len(value))]
        elif isinstance(value, (int, float)):
            merged[key] = statistics.median(v or 0 for v in values)
        else:
            merged[key] = value
    return merged


def measure(vps, run, settings):
    """One run: its load (run.scenario) on run.server, after an unrecorded warm-up,
    with the CPU time Nginx and the Python servers used meanwhile."""
    url = run.server.url(vps) + run.route
    with side_load(vps, run, settings) as side:
        if settings.warmup:
            load(vps, run, url, settings.warmup)
        before, nginx_before = cpu_seconds(vps), vps.unit_cpu_us("nginx.service")
        r = load(vps, run, url, settings.duration)
        after, nginx_after = cpu_seconds(vps), vps.unit_cpu_us("nginx.service")
    result = {
        "server": run.server.name, "route": run.route, "concurrency": run.concurrency,
        "scenario": run.scenario,
        # Answers with a 2xx/3xx status per second.
        "rps": round(r["ok"] / r["seconds"], 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
        # Requests that failed or got no answer in time, and 4xx/5xx answers.
        "errors": sum(r["error_kinds"].values()),
        "error_kinds": r["error_kinds"],
        "requests": r["requests"],
        # CPU seconds used during the run by Nginx and by the Python servers (from /proc).
        "cpu_s": {k: round(after[k] - before[k], 2) for k in after},
        # Nginx's CPU time per answered request (its unit's cgroup), in microseconds.
        "nginx_us_per_request": round((nginx_after - nginx_before) / r["ok"], 1) if r["ok"] else None,
    }
    if side:
        result[run.scenario] = side
    return result


def load(vps, run, url, seconds):
    """The run's load generator for that long: its counters (requests, ok, seconds,
    p50_us, p99_us, error_kinds)."""
    if run.scenario == "h2":
        return h2load(vps, url, run.concurrency, seconds, streams=H2_STREAMS)
    if run.scenario == "paced":
        return h2load(vps, url, run.concurrency, seconds, h1=True, rate=PACED_RPS // run.concurrency)
    return wrk(vps, url, run.concurrency, seconds)


def wrk(vps, url, concurrency, seconds):
    """One wrk run, on the load generators' CPUs (a thread each, 2 when not pinned);
    wrk_report.lua prints its counters as JSON."""
    threads = len(vps.load_cpus.split(",")) if vps.load_cpus else 2
    out = vps.sh(vps.on_load_cpus(f"wrk -t{threads} -c{concurrency} -d{seconds}s --timeout 2s "
                                  f"--latency -s {WORK}/report.lua '{url}'"), timeout=seconds + 60)
    r = wrk_counters(out)
    if r is None:
        raise RuntimeError(f"no result from wrk on {url}:\n{out}")
    # wrk counts no error for a request that never gets an answer: when none did,
    # count every connection as one ("stalled").
    kinds = {k: r[k] for k in ("connect", "read", "write", "timeout", "status")}
    kinds["stalled"] = concurrency if r["requests"] == 0 else 0
    # (wrk counts 4xx/5xx answers as errors of kind "status".)
    return {"requests": r["requests"], "ok": r["requests"] - r["status"], "seconds": r["duration_us"] / 1e6,
            "p50_us": r["p50_us"], "p99_us": r["p99_us"], "error_kinds": kinds}


def wrk_counters(out):
    """The counters wrk_report.lua prints as JSON on its BENCH_RESULT line, or None."""
    line = next((line for line in out.splitlines() if line.startswith("BENCH_RESULT ")), None)
    return json.loads(line.split(" ", 1)[1]) if line else None


def h2load(vps, url, clients, seconds, streams=1, h1=False, rate=None):
    """One h2load run (Debian's nghttp2-client), on the load generators' CPUs: HTTP/2
    with streams requests at once per connection, or HTTP/1.1 (h1); at most rate
    requests/s per connection. Its per-request log gives the percentiles."""
    log = f"{WORK}/h2load.log"
    options = f"-c {clients} -m {streams} -D {seconds}" + (" --h1" if h1 else "") + (f" --rps {rate}" if rate else "")
    out = vps.sh(f"rm -f {log}; " + vps.on_load_cpus(f"h2load {options} --log-file {log} '{url}'")
                 + f"; echo BENCH_LOG; cut -f2,3 {log}", timeout=seconds + 60)
    summary, _, lines = out.partition("BENCH_LOG\n")
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", summary)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", summary)
    if not counts or not codes:
        raise RuntimeError(f"no result from h2load on {url}:\n{summary}")
    _, done, _, failed, errored, timeout = map(int, counts.groups())
    ok2, ok3, bad4, bad5 = map(int, codes.groups())
    durations = sorted(int(line.split("\t")[1]) for line in lines.splitlines() if "\t" in line)
    return {"requests": done, "ok": ok2 + ok3, "seconds": float(seconds),
            "p50_us": percentile(durations, 50), "p99_us": percentile(durations, 99),
            "error_kinds": {"failed": failed, "errored": errored, "timeout": timeout,
                            "status": bad4 + bad5, "stalled": clients if done == 0 else 0}}


def percentile(ordered, p):
    """The p-th percentile of an ordered list (nearest rank), 0 when empty."""
    return ordered[max(0, -(-len(ordered) * p // 100) - 1)] if ordered else 0


@contextlib.contextmanager
def side_load(vps, run, settings):
    """What runs beside the measured load, by scenario: the slowloris clients, the
    head-of-line blocking's slow requests, or the memory samples; yields a dict that
    their figures fill in when the block ends (None for the other scenarios)."""
    if run.scenario == "slowloris":
        with slowloris(vps, run.server.url(vps), settings) as stats:
            yield stats
    elif run.scenario == "hol":
        with slow_requests(vps, run.server.url(vps) + HOL_SLOW_ROUTE, settings) as stats:
            yield stats
    elif run.scenario == "memory":
        with memory(vps, run, settings) as stats:
            yield stats
    else:
        yield None


@contextlib.contextmanager
def slowloris(vps, url, settings):
    """settings.slowloris connections trickle their headers until the block ends. The
    attacker runs on the load generators' CPUs: its CPU is not the server's."""
    tls = ["--tls"] if url.startswith("https:") else []
    seconds = settings.warmup + settings.duration + 10
    loris = subprocess.Popen(
        ["docker", "exec", vps.container, *vps.load_pin(), "python3", f"{WORK}/slowloris.py", url.rsplit(":", 1)[1],
         *tls, "--connections", str(settings.slowloris), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, text=True)
    stats = {}
    try:
        ready = loris.stdout.readline().split()  # "ready N PID" once all are open
        time.sleep(1)
        yield stats
        if len(ready) == 3:
            vps.sh(f"kill {ready[2]}", check=False)  # done: it stops within a second
        stats.update(json.loads(loris.stdout.readline() or "{}"))
        stats["opened"] = int(ready[1]) if len(ready) == 3 else 0
    finally:
        loris.wait(timeout=seconds + 30)


@contextlib.contextmanager
def slow_requests(vps, url, settings):
    """HOL_SLOW_CONNECTIONS more connections ask for url (a slow route) back to back
    until the block ends: wrk's counters for them."""
    stats = {}
    with wrk_beside(vps, url, HOL_SLOW_CONNECTIONS, settings, timeout="10s") as counters:
        yield stats
    if counters:
        stats.update(route=HOL_SLOW_ROUTE, connections=HOL_SLOW_CONNECTIONS, requests=counters["requests"],
                     p50_ms=round(counters["p50_us"] / 1000, 1), errors=wrk_errors(counters))


@contextlib.contextmanager
def wrk_beside(vps, url, connections, settings, timeout="2s"):
    """wrk on url with that many connections, on the load generators' CPUs, from a
    second before the measured run's warm-up until the block ends; yields a dict that
    wrk's counters (wrk_counters) fill in then."""
    threads = len(vps.load_cpus.split(",")) if vps.load_cpus else 1
    seconds = settings.warmup + settings.duration + 1
    proc = subprocess.Popen(
        ["docker", "exec", vps.container, *vps.load_pin(), "wrk", f"-t{threads}", f"-c{connections}",
         f"-d{seconds}s", "--timeout", timeout, "-s", f"{WORK}/report.lua", url],
        stdout=subprocess.PIPE, text=True)
    counters = {}
    try:
        time.sleep(1)  # in flight before the measured load starts
        yield counters
    finally:
        out, _ = proc.communicate(timeout=seconds + 30)
    counters.update(wrk_counters(out) or {})


def wrk_errors(counters):
    """wrk's failed requests and 4xx/5xx answers."""
    return sum(counters[k] for k in ("connect", "read", "write", "timeout", "status"))


@contextlib.contextmanager
def memory(vps, run, settings):
    """The memory of Nginx and of the server's units (Vps.unit_memory, added up) when
    the block begins (idle) and halfway through the measured load that follows the
    warm-up; and, for a server of several apps, the same load on the others beside it
    (their counters under "beside")."""
    units = run.server.units(vps)

    def sample():
        apps = [vps.unit_memory(unit) for unit in units]
        return {"nginx": vps.unit_memory("nginx.service"),
                "app": {k: round(sum(app[k] for app in apps), 1) for k in ("processes", "rss_mb", "pss_mb")}}

    stats = {"idle": sample()}
    timer = threading.Timer(settings.warmup + settings.duration / 2, lambda: stats.update(load=sample()))
    with contextlib.ExitStack() as others:
        beside = [others.enter_context(wrk_beside(vps, url + run.route, run.concurrency, settings))
                  for url in run.server.beside(vps)]
        timer.start()
        try:
            yield stats
        finally:
            timer.join()
    if beside:
        stats["beside"] = [{"requests": c.get("requests", 0), "errors": wrk_errors(c) if c else run.concurrency,
                            "rps": round(c["requests"] / (c["duration_us"] / 1e6), 1) if c else 0}
                           for c in beside]


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
