#!/usr/bin/env python3
"""Benchmark the demo VPS: our stack against the alternatives, in one run on one host.

    python bench/bench.py            # the full benchmark (make bench)
    python bench/bench.py --smoke    # every server once, briefly (make bench-smoke)
    python bench/bench.py --check DIR   # is DIR/latest.json (and the rest) well formed?

Everything runs inside the demo container (`make demo`), against loopback: the
load generator (Debian's wrk, installed by the setup step), the servers started for
the comparison (as transient systemd units and a second nginx, all stopped and
removed at the end) and the slowloris clients. Servers:

  flask-dev        `flask run`, Flask's threaded development server
  gunicorn-direct  Gunicorn with our gunicorn.conf.py, on TCP, no Nginx
  stack            what the roles provisioned: Nginx -> unix socket -> Gunicorn
  recipe           the tutorial setup: `gunicorn --workers 3` (sync) on a unix
                   socket behind Nginx, with no upstream keepalive
  nginx-static     `return 200` from Nginx through our nginx.conf: the ceiling
  nginx-minimal    the same `return 200` from a second Nginx with a minimal config
                   and as many workers as ours
  class-*          our gunicorn.conf.py with the gevent, gthread and sync workers,
                   behind our Nginx over plain HTTP (the choice of the default)

Writes DIR/latest.json, DIR/summary.md and DIR/chart.png (DIR: bench/results, or
$BENCH_OUT). Settings (environment): BENCH_DURATION seconds per measured run (6),
BENCH_WARMUP seconds of unrecorded load before each (1), BENCH_PROVISION=0 skips
the provisioning timings (bench/provision.sh), BENCH_SLOWLORIS connections (400),
BENCH_CONTAINER (flask-vps-demo), BENCH_STACK_URL (found out by default).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMOKE = "--smoke" in sys.argv
CONTAINER = os.environ.get("BENCH_CONTAINER", "flask-vps-demo")
DURATION = int(os.environ.get("BENCH_DURATION", "1" if SMOKE else "6"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "0" if SMOKE else "1"))
PROVISION = os.environ.get("BENCH_PROVISION", "0" if SMOKE else "1") == "1"
SLOWLORIS = int(os.environ.get("BENCH_SLOWLORIS", "400"))
OUT = Path(os.environ.get("BENCH_OUT", HERE / "results" / ("smoke" if SMOKE else "")))

# The app as the flaskapp role deployed it in the demo container: in one of two slots
# (blue, green), each with its units <app>-<slot>.socket/.service, its settings in
# /etc/flaskapp/<app>/<slot>/ and its release at /srv/<app>/<slot>; Nginx reaches the
# serving slot through /srv/<app>/app.sock. use_serving_slot() fills in the slot.
APP = "hello"
SLOT = None
APP_DIR = VENV = GUNICORN_CONF = ENV_FILE = SERVICE = None
WORK = "/tmp/bench"  # scratch directory inside the container
NGINX_CONF = "/etc/nginx/conf.d/zz-bench.conf"  # temporary server blocks
NGINX_LOG = "/var/log/nginx/bench-access.log"  # their access log, removed afterwards

SERVERS = ["flask-dev", "gunicorn-direct", "stack", "recipe", "nginx-static", "nginx-minimal"]
APP_SERVERS = SERVERS[:4]  # nginx-* answer every path with an empty 200: `/` only
# The choice of the flaskapp role's worker class: our gunicorn.conf.py with each
# class, behind a server block of our Nginx with the stack's upstream settings (plain
# HTTP, so the three are compared with each other only). Not in the chart.
CLASSES = {"class-gevent": "gevent", "class-gthread": "gthread", "class-sync": "sync"}
GTHREAD_THREADS = 40  # flaskapp_threads' default
PORTS = {"flask-dev": 5000, "gunicorn-direct": 8001, "recipe": 8082,
         "nginx-static": 8083, "nginx-minimal": 8084,
         "class-gevent": 8091, "class-gthread": 8092, "class-sync": 8093}
# (route, concurrency, servers), run in this order. The servers compared by a
# target run one right after the other, so that the noise of a shared machine hits
# them alike; the targets' `/` c50 runs are then repeated in reverse order (A B .. B A)
# and each result is the mean of its two runs, so that a drift hits both sides alike.
# "+slowloris": normal clients load the server while slow connections trickle their
# headers (gunicorn-direct shows what happens with no Nginx in front).
PLAN = [
    ("/", 50, ["flask-dev", "gunicorn-direct", "stack", "stack+slowloris", "recipe",
               "recipe+slowloris", "gunicorn-direct+slowloris", "nginx-static", "nginx-minimal"]),
    ("/", 200, SERVERS),
    ("/slow?ms=100", 50, APP_SERVERS),
    ("/slow?ms=100", 200, APP_SERVERS),
    ("/", 50, list(CLASSES)),
    ("/slow?ms=100", 200, list(CLASSES)),
]
SLOWLORIS_SERVERS = [s.split("+")[0] for s in PLAN[0][2] if s.endswith("+slowloris")]


# --- running things in the container -------------------------------------------

def dexec(script, stdin=None, check=True, timeout=120):
    """Run a shell script in the container; return its stdout."""
    proc = subprocess.run(["docker", "exec", "-i", CONTAINER, "sh", "-euc", script],
                          input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"in {CONTAINER}: {script}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def put(path, text):
    dexec(f"cat > {path}", stdin=text)


def serving_slot():
    """The slot that serves the app: `flaskapp-slot status`, or where app.sock links."""
    out = dexec(f"/usr/local/sbin/flaskapp-slot status {APP} 2>/dev/null || true", check=False)
    try:
        slot = json.loads(out)["serving_slot"]
    except (ValueError, KeyError):
        slot = ""
    if not slot:  # /srv/hello/app.sock -> /run/hello-<slot>.sock
        link = dexec(f"readlink /srv/{APP}/app.sock || true", check=False).strip()
        slot = Path(link).name.removesuffix(".sock").removeprefix(f"{APP}-")
    if not slot:
        raise RuntimeError(f"no serving slot of {APP} in {CONTAINER} (flaskapp-slot status {APP})")
    return slot


def use_serving_slot():
    """Point the benchmark's servers at the serving slot's release, venv and settings."""
    global SLOT, APP_DIR, VENV, GUNICORN_CONF, ENV_FILE, SERVICE
    SLOT = serving_slot()
    APP_DIR = f"/srv/{APP}/{SLOT}/app"
    VENV = f"/srv/{APP}/{SLOT}/venv"
    GUNICORN_CONF = f"/etc/flaskapp/{APP}/{SLOT}/gunicorn.conf.py"
    ENV_FILE = f"/etc/flaskapp/{APP}/{SLOT}/env"
    SERVICE = f"{APP}-{SLOT}.service"


def wait_ready(url, what):
    ok = dexec(f"for i in $(seq 1 60); do curl -fsSk -o /dev/null --max-time 1 '{url}' "
               f"&& echo ok && exit 0; sleep 0.5; done; exit 0")
    if "ok" not in ok:
        log = dexec(f"tail -n 30 {WORK}/{what}.log 2>/dev/null || true", check=False)
        raise RuntimeError(f"{what} does not answer on {url}\n{log}")


def start_unit(name, command, *properties):
    """Start a command as a transient systemd unit bench-NAME, as the app's user
    (with other PROPERTIES: then only those)."""
    log = f"{WORK}/{name}.log"
    props = list(properties) or [
        f"User={APP}", f"Group={APP}", f"WorkingDirectory={APP_DIR}",
        f"EnvironmentFile={ENV_FILE}", f"Environment=PATH={VENV}/bin:/usr/bin:/bin"]
    props += [f"StandardOutput=append:{log}", f"StandardError=append:{log}"]
    dexec(shlex.join(["systemd-run", f"--unit=bench-{name}", "--collect", "--quiet",
                      *[f"--property={p}" for p in props], "--", *command]))


def service_properties():
    """The app's systemd settings (user, environment, sandbox), as the serving slot's
    hello-<slot>.service has them, less what would clash with the running service or
    start it differently."""
    unit = dexec(f"cat /etc/systemd/system/{SERVICE}")
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    skip = ("Type", "NotifyAccess", "StateDirectory", "StateDirectoryMode", "RuntimeDirectory",
            "RuntimeDirectoryMode", "ExecStartPre", "ExecStart", "ExecReload", "KillMode",
            "TimeoutStopSec", "Restart", "RestartSec")
    return [line for line in service.splitlines()
            if "=" in line and not line.startswith("#") and line.split("=", 1)[0] not in skip]


def stop_unit(name):
    dexec(f"systemctl stop bench-{name}.service 2>/dev/null || true", check=False)


# --- the servers ----------------------------------------------------------------

def nginx_blocks():
    """Temporary server blocks in our Nginx (through our nginx.conf)."""
    return f"""# Temporary, written by bench/bench.py and removed when it ends.
# recipe: the tutorial's proxy to `gunicorn --workers 3`, no upstream keepalive.
server {{
    listen 127.0.0.1:{PORTS['recipe']};
    access_log {NGINX_LOG} main;
    location / {{
        include proxy_params;
        proxy_pass http://unix:/run/bench-recipe/recipe.sock;
    }}
}}
{class_blocks()}
# nginx-static: the ceiling.
server {{
    listen 127.0.0.1:{PORTS['nginx-static']};
    access_log {NGINX_LOG} main;
    location / {{
        return 200;
    }}
}}
"""


def class_blocks():
    """One server block per worker class, proxying as the stack's vhost does."""
    blocks = []
    for name, cls in CLASSES.items():
        blocks.append(f"""# {name}: our gunicorn.conf.py with the {cls} worker class.
upstream bench_{cls} {{
    server unix:/run/bench-{name}/app.sock;
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{PORTS[name]};
    access_log {NGINX_LOG} main;
    location / {{
        proxy_pass http://bench_{cls};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}""")
    return "\n".join(blocks)


def class_conf(cls):
    """Our gunicorn.conf.py for another worker class: gevent's patching only for gevent."""
    conf = dexec(f"cat {GUNICORN_CONF}")
    if cls != "gevent":
        conf = re.sub(r"^(from gevent import monkey|monkey\.patch_all\(\))$", "", conf, flags=re.M)
    path = f"{WORK}/gunicorn-{cls}.conf.py"
    put(path, conf)
    return path


def minimal_nginx_conf():
    """A second Nginx with nothing but what `return 200` needs (it logs, as Nginx
    does by default), and as many workers as ours: the comparison is of everything
    else our nginx.conf sets. (How many workers is a choice of its own: see the
    README's Performance section.)"""
    workers = re.search(r"^worker_processes (\w+);", dexec("cat /etc/nginx/nginx.conf"), re.M)
    return f"""pid {WORK}/nginx-minimal.pid;
error_log {WORK}/nginx-minimal.error.log;
worker_processes {workers.group(1) if workers else "auto"};
events {{}}
http {{
    access_log {NGINX_LOG};
    server {{
        listen 127.0.0.1:{PORTS['nginx-minimal']};
        location / {{
            return 200;
        }}
    }}
}}
"""


def socket_unit_properties(name):
    """A Gunicorn of our own on a unix socket that Nginx's group may connect to."""
    return (f"User={APP}", "Group=www-data", f"WorkingDirectory={APP_DIR}",
            f"EnvironmentFile={ENV_FILE}", f"RuntimeDirectory=bench-{name}",
            f"Environment=PATH={VENV}/bin:/usr/bin:/bin")


def start(server):
    if server == "flask-dev":
        start_unit(server, [f"{VENV}/bin/flask", "--app", APP, "run", "--host", "127.0.0.1",
                            "--port", str(PORTS[server]), "--with-threads"])
    elif server == "gunicorn-direct":
        # Our gunicorn.conf.py and systemd settings, bound to TCP. (The control
        # socket would clash with the app's.)
        start_unit(server, [f"{VENV}/bin/gunicorn", "--config", GUNICORN_CONF,
                            "--bind", f"127.0.0.1:{PORTS[server]}", "--no-control-socket"],
                   *service_properties())
    elif server == "recipe":
        # As the tutorials write it: 3 sync workers on a socket in the www-data group.
        start_unit(server, [f"{VENV}/bin/gunicorn", "--workers", "3", "--bind",
                            "unix:/run/bench-recipe/recipe.sock", "--umask", "007",
                            "--no-control-socket", f"{APP}:app"],
                   *socket_unit_properties(server))
    elif server in CLASSES:
        cls = CLASSES[server]
        extra = ["--threads", str(GTHREAD_THREADS)] if cls == "gthread" else []
        start_unit(server, [f"{VENV}/bin/gunicorn", "--config", class_conf(cls),
                            "--worker-class", cls, *extra, "--bind",
                            f"unix:/run/bench-{server}/app.sock", "--umask", "007",
                            "--no-control-socket"],
                   *socket_unit_properties(server))
    elif server == "nginx-minimal":
        put(f"{WORK}/nginx-minimal.conf", minimal_nginx_conf())
        dexec(f"nginx -q -t -c {WORK}/nginx-minimal.conf && nginx -c {WORK}/nginx-minimal.conf")
    wait_ready(base_url(server) + "/", server)


def stop(server):
    if server in ("flask-dev", "gunicorn-direct", "recipe", *CLASSES):
        stop_unit(server)
    elif server == "nginx-minimal":
        dexec(f"[ ! -f {WORK}/nginx-minimal.pid ] || nginx -c {WORK}/nginx-minimal.conf -s quit; "
              f"for i in $(seq 1 50); do [ -f {WORK}/nginx-minimal.pid ] || break; sleep 0.1; done",
              check=False)


STACK_URL = os.environ.get("BENCH_STACK_URL", "")


def base_url(server):
    return STACK_URL if server == "stack" else f"http://127.0.0.1:{PORTS[server]}"


def find_stack_url():
    """Plain HTTP on port 80, or HTTPS on 443 when port 80 only redirects there."""
    answer = dexec("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "
                   "--max-time 5 http://127.0.0.1:80/healthz")
    code, _, location = answer.partition(" ")
    if code.startswith("3") and location.startswith("https://"):
        return "https://127.0.0.1:443"
    return "http://127.0.0.1:80"


def setup():
    print(f"setup: wrk and the temporary servers' config in {CONTAINER}")
    dexec("command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; "
          "apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }", timeout=600)
    cleanup()  # anything left over by an interrupted run
    dexec(f"mkdir -p {WORK}")
    put(f"{WORK}/report.lua", (HERE / "wrk_report.lua").read_text())
    put(f"{WORK}/slowloris.py", (HERE / "slowloris.py").read_text())
    put(NGINX_CONF, nginx_blocks())
    out = dexec(f"nginx -t 2>&1 || {{ rm -f {NGINX_CONF}; exit 1; }}", check=False)
    if "test is successful" not in out:
        raise RuntimeError(f"the temporary server blocks fail nginx -t:\n{out}")
    dexec("systemctl reload nginx")


def cleanup():
    """Stop everything the benchmark started; put the real stack back as it was."""
    for server in SERVERS + list(CLASSES):
        stop(server)
    dexec(f"if [ -f {NGINX_CONF} ]; then rm -f {NGINX_CONF}; nginx -t -q && systemctl reload nginx; fi; "
          f"rm -rf {WORK} {NGINX_LOG}", check=False)


# --- measuring ------------------------------------------------------------------

def wrk(url, concurrency, seconds):
    """One wrk run; wrk_report.lua prints its counters as JSON."""
    out = dexec(f"wrk -t2 -c{concurrency} -d{seconds}s --timeout 2s --latency "
                f"-s {WORK}/report.lua '{url}'", timeout=seconds + 60)
    line = next((l for l in out.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no result from wrk on {url}:\n{out}")
    return json.loads(line.split(" ", 1)[1])


def measure(server, route, concurrency, scenario="normal"):
    url = base_url(server) + route
    if WARMUP:
        wrk(url, concurrency, WARMUP)
    before = cpu_seconds()
    r = wrk(url, concurrency, DURATION)
    after = cpu_seconds()
    seconds = r["duration_us"] / 1e6
    # wrk counts no error for a request that never gets an answer: when none did,
    # count every connection as one.
    stalled = concurrency if r["requests"] == 0 else 0
    return {
        "server": server, "route": route, "concurrency": concurrency, "scenario": scenario,
        # Answers with a 2xx/3xx status per second (wrk counts 4xx/5xx as errors).
        "rps": round((r["requests"] - r["status"]) / seconds, 1),
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
        # Socket errors (connect, read, write, answer after the 2 s timeout), 4xx/5xx.
        "errors": r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"] + stalled,
        "requests": r["requests"],
        # CPU seconds used during the run by Nginx and by the Python servers.
        "cpu_s": {k: round(after[k] - before[k], 2) for k in after},
    }


def cpu_seconds():
    """CPU seconds (user + system) used so far by the container's Nginx processes and
    by its Python servers (gunicorn, flask); only the server under test is busy."""
    out = dexec("cat /proc/[0-9]*/stat 2>/dev/null || true")
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
    return both


def measure_under_slowloris(server):
    """Normal clients on `/` at c50 while SLOWLORIS connections trickle headers."""
    url = base_url(server)
    tls = ["--tls"] if url.startswith("https:") else []
    seconds = WARMUP + DURATION + 4
    loris = subprocess.Popen(
        ["docker", "exec", CONTAINER, "python3", f"{WORK}/slowloris.py", url.rsplit(":", 1)[1],
         *tls, "--connections", str(SLOWLORIS), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, text=True)
    try:
        ready = loris.stdout.readline().split()  # "ready N PID" once all are open
        time.sleep(1)
        run = measure(server, "/", 50, "slowloris")
        if len(ready) == 3:
            dexec(f"kill {ready[2]}", check=False)  # done: it stops within a second
        stats = json.loads(loris.stdout.readline() or "{}")
        stats["opened"] = int(ready[1]) if len(ready) == 3 else 0
        run["slowloris"] = stats
        return run
    finally:
        loris.wait(timeout=seconds + 30)


def machine():
    info = dexec("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; nproc; "
                 "awk '/MemTotal/ {print int($2/1048576+0.5)}' /proc/meminfo; uname -r; "
                 "cat /etc/debian_version; nginx -v 2>&1 | cut -d/ -f2; "
                 f"{VENV}/bin/gunicorn --version | awk '{{print $NF}}'; "
                 f"{VENV}/bin/python --version | awk '{{print $2}}'; cut -d' ' -f1-3 /proc/loadavg")
    cpu, cores, mem, kernel, debian, nginx, gunicorn, python, load = info.strip().split("\n")
    return (f"{cpu.strip()}, {cores} cores, {mem} GiB, Linux {kernel}; container {CONTAINER} "
            f"(Debian {debian}); nginx {nginx}, gunicorn {gunicorn.strip('()')}, Python {python}; "
            f"load average before the run {load}")


def stack_config():
    """The settings of the stack under test, as the roles rendered them."""
    conf = dexec(f"cat {GUNICORN_CONF}; cat /etc/nginx/sites-enabled/{APP}.conf", check=False)
    found = {}
    for key in ("worker_class", "workers", "threads", "worker_connections"):
        m = re.search(rf"^{key} = \"?(\w+)\"?", conf, re.M)
        found[key] = m.group(1) if m else None
    # How many requests each worker serves at once, in words.
    found["per_worker"] = (f"{found['threads']} threads" if found["worker_class"] == "gthread"
                           else f"{found['worker_connections'] or 1000} connections"
                           if found["worker_class"] == "gevent" else "1 request")
    m = re.search(r"^\s*keepalive (\d+);", conf, re.M)
    found["nginx_upstream_keepalive"] = int(m.group(1)) if m else 0
    found["url"] = STACK_URL
    found["slot"] = SLOT
    # A per-client rate limit turns most of a one-client load test into 429s.
    found["rate_limited"] = bool(re.search(r"^\s*limit_(req|conn) ", conf, re.M))
    return found


# --- provisioning -----------------------------------------------------------------

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


# --- reporting --------------------------------------------------------------------

def find(runs, server, route, concurrency, scenario="normal"):
    return next((r for r in runs if (r["server"], r["route"], r["concurrency"], r["scenario"])
                 == (server, route, concurrency, scenario)), None)


def checks(runs):
    """The targets of issue 5, as PASS/FAIL/SKIP lines. Ratios, measured in one run."""
    results = []

    def check(name, ok, measured):
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        results.append({"status": status, "target": name, "measured": measured})

    stack, dev = find(runs, "stack", "/", 50), find(runs, "flask-dev", "/", 50)
    direct = find(runs, "gunicorn-direct", "/", 50)
    slow = find(runs, "stack", "/slow?ms=100", 200)
    loris = find(runs, "stack", "/", 50, "slowloris")
    static, minimal = find(runs, "nginx-static", "/", 50), find(runs, "nginx-minimal", "/", 50)
    missing = "not measured"

    if stack and dev and dev["rps"]:
        ratio = stack["rps"] / dev["rps"]
        check("`/` c50: stack >= 3.5x flask-dev rps", ratio >= 3.5,
              f"{ratio:.2f}x ({stack['rps']:.0f} vs {dev['rps']:.0f} rps)")
        ratio = stack["p99_ms"] / dev["p99_ms"] if dev["p99_ms"] else float("inf")
        errors = f", {stack['errors']} errors" if stack["errors"] else ""
        check("`/` c50: stack p99 <= 1/3 of flask-dev p99", ratio <= 1 / 3 and not errors,
              f"{ratio:.2f} ({stack['p99_ms']:.1f} vs {dev['p99_ms']:.1f} ms{errors})")
    else:
        check("`/` c50: stack >= 3.5x flask-dev rps", None, missing)
        check("`/` c50: stack p99 <= 1/3 of flask-dev p99", None, missing)
    if stack and direct and direct["rps"]:
        ratio = stack["rps"] / direct["rps"]
        check("`/` c50: stack >= 95% of gunicorn-direct rps", ratio >= 0.95,
              f"{ratio:.0%} ({stack['rps']:.0f} vs {direct['rps']:.0f} rps)")
    else:
        check("`/` c50: stack >= 95% of gunicorn-direct rps", None, missing)
    if slow:
        check("`/slow?ms=100` c200: stack >= 90% of 2000 rps", slow["rps"] >= 1800,
              f"{slow['rps'] / 2000:.0%} ({slow['rps']:.0f} rps, p99 {slow['p99_ms']:.0f} ms)")
    else:
        check("`/slow?ms=100` c200: stack >= 90% of 2000 rps", None, missing)
    if stack and loris and stack["rps"]:
        kept = loris["rps"] / stack["rps"]
        check("slowloris: stack keeps >= 90% of its `/` c50 throughput, 0 errors",
              kept >= 0.9 and loris["errors"] == 0,
              f"{kept:.0%} kept, {loris['errors']} errors "
              f"({loris.get('slowloris', {}).get('opened', 0)} slow connections)")
    else:
        check("slowloris: stack keeps >= 90% of its `/` c50 throughput, 0 errors", None, missing)
    if static and minimal and minimal["rps"]:
        ratio = static["rps"] / minimal["rps"]
        check("`return 200` c50: our nginx.conf within 10% of a minimal nginx.conf",
              ratio >= 0.9, f"{ratio:.0%} ({static['rps']:.0f} vs {minimal['rps']:.0f} rps)")
    else:
        check("`return 200` c50: our nginx.conf within 10% of a minimal nginx.conf", None, missing)
    return results


def route_label(run):
    label = f"{run['route']} c{run['concurrency']}"
    return label + " slowloris" if run["scenario"] == "slowloris" else label


def table(runs):
    lines = ["| server | route | conc. | scenario | rps | p50 ms | p99 ms | errors |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['server']} | `{r['route']}` | {r['concurrency']} | {r['scenario']} | "
                     f"{r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def slowloris_lines(runs):
    lines = []
    for server in SLOWLORIS_SERVERS:
        normal, loris = find(runs, server, "/", 50), find(runs, server, "/", 50, "slowloris")
        if normal and loris and normal["rps"]:
            stats = loris.get("slowloris", {})
            lines.append(f"- {server}: {loris['rps'] / normal['rps']:.0%} of its throughput kept "
                         f"({loris['rps']:,.0f} vs {normal['rps']:,.0f} rps), {loris['errors']} "
                         f"errors, p99 {loris['p99_ms']:.1f} ms (normally {normal['p99_ms']:.1f} ms); "
                         f"{stats.get('opened', 0)} slow connections opened, "
                         f"{stats.get('reopened', 0)} reopened after the server dropped them")
    return lines


def cpu_lines(runs):
    stack = find(runs, "stack", "/", 50)
    if not stack or not stack.get("cpu_s", {}).get("python"):
        return ["Not measured."]
    cpu = stack["cpu_s"]
    return [f"During the stack's `/` c50 runs Nginx used {cpu['nginx']:.1f} CPU seconds and "
            f"Gunicorn with Flask {cpu['python']:.1f}: a request costs Nginx (TLS included) "
            f"{cpu['nginx'] / cpu['python']:.0%} of what it costs the app. Nginx's worker count "
            "(`nginx_worker_processes`, one per four cores) follows from it; the rest of the "
            "2 cores went to wrk, which shares the host."]


def class_lines(runs):
    lines = []
    for server in CLASSES:
        plain, slow = find(runs, server, "/", 50), find(runs, server, "/slow?ms=100", 200)
        if plain and slow:
            lines.append(f"- {CLASSES[server]}: `/` c50 {plain['rps']:,.0f} rps, p99 "
                         f"{plain['p99_ms']:.1f} ms; `/slow?ms=100` c200 {slow['rps']:,.0f} rps "
                         f"({slow['rps'] / 2000:.0%} of 2,000), p99 {slow['p99_ms']:.0f} ms, "
                         f"{slow['errors']} errors")
    return lines


def provisioning_lines(prov):
    if not prov:
        return ["Not measured in this run (smoke mode or BENCH_PROVISION=0)."]
    if "error" in prov:
        return [f"Not measured: {prov['error']}."]
    lines = [f"- container start and boot, SSH ready: {prov['boot_s']:.1f} s",
             f"- fresh converge of `site.yml`: **{prov['converge_s']:.1f} s**",
             f"- idempotent re-run: **{prov['rerun_s']:.1f} s**, changed={prov['rerun_changed']}",
             f"- deploy of a new release (`playbooks/deploy.yml`, a code-only change), "
             f"{len(prov['deploys_s'])} runs: "
             f"{', '.join(f'{s:.1f}' for s in prov['deploys_s'])} s, median **{prov['deploy_s']:.1f} s**",
             "", f"Slowest of the {prov['tasks_converge']} tasks of the fresh converge "
             f"({prov['tasks_converge_s']:.1f} s in all, by profile_tasks):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_converge"]]
    lines += ["", f"Slowest of the {prov['tasks_rerun']} tasks of the re-run "
              f"({prov['tasks_rerun_s']:.1f} s in all):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_rerun"]]
    lines += ["", f"Slowest of the {prov['tasks_deploy']} tasks of the median deploy "
              f"({prov['tasks_deploy_s']:.1f} s in all):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_deploy"]]
    return lines


def summary(result):
    cfg = result["stack_config"]
    lines = [
        "# Benchmark: Flask behind Nginx and Gunicorn",
        "",
        f"Measured {result['date']} by `make bench` ({result['duration_s']} s per run after "
        f"{result['warmup_s']} s of warm-up, wrk with 2 threads), all on one host, inside the demo "
        f"VPS container, over loopback. Machine: {result['machine']}.",
        "",
        f"Stack under test ({cfg['url']}, slot {cfg.get('slot')}): Gunicorn {cfg['worker_class']}, {cfg['workers']} workers x "
        f"{cfg['per_worker']}, Nginx upstream keepalive {cfg['nginx_upstream_keepalive']}. "
        "rps counts 2xx/3xx answers per second; errors are socket errors (connect, read, write, "
        "an answer later than 2 s) and 4xx/5xx answers (and, in a run where no request got an "
        "answer at all, every connection).",
        "",
        "![requests per second and p99 latency per server](chart.png)",
        "",
        "## Targets",
        "",
        "Ratios between servers measured in this run, never asserted. The machine is shared and "
        "has 2 cores: numbers, and ratios less so, move from run to run, and a result near its "
        "threshold can flip between two runs. Each `/` c50 result (but slowloris) is the mean "
        "of two runs made in mirrored order (A B .. B A).",
        "",
    ]
    lines += [f"- **{c['status']}** {c['target']}: {c['measured']}" for c in result["checks"]]
    if cfg.get("rate_limited") and any(r["server"] == "stack" and r["errors"] for r in result["runs"]):
        lines += ["", "Note: the stack's vhost limits requests or connections per client, and all of "
                  "the load comes from 127.0.0.1: its errors are the limit's 429 answers. Exempt "
                  "127.0.0.1 from the limits (nginx_limit_exempt) to measure the stack itself."]
    lines += ["", "## Slowloris", "",
              f"{SLOWLORIS} connections send their headers one line a second and never finish, "
              "while normal clients load `/` at c50:", ""]
    lines += slowloris_lines(result["runs"]) or ["Not measured."]
    lines += ["", "## Where the CPU goes", ""] + cpu_lines(result["runs"])
    lines += ["", "## Worker classes", "",
              "Our gunicorn.conf.py with each Gunicorn worker class, behind our Nginx with the "
              f"stack's upstream settings, over plain HTTP (gthread with {GTHREAD_THREADS} threads "
              "per worker); the choice of `flaskapp_worker_class`:", ""]
    lines += class_lines(result["runs"]) or ["Not measured."]
    lines += ["", "## Provisioning", ""] + provisioning_lines(result.get("provisioning"))
    lines += ["", "## All runs", "", table(result["runs"]), ""]
    return "\n".join(lines)


def chart(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    groups = []
    for r in runs:
        if route_label(r) not in groups:
            groups.append(route_label(r))
    colors = dict(zip(SERVERS, ["#9e9e9e", "#1f77b4", "#2ca02c", "#ff7f0e", "#17becf", "#bcbd22"]))
    width = 0.8 / len(SERVERS)
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for ax, key, title in ((axes[0], "rps", "requests per second (log scale, higher is better)"),
                           (axes[1], "p99_ms", "p99 latency, ms (log scale, lower is better)")):
        ax.set_yscale("log")
        for i, server in enumerate(SERVERS):
            xs, ys = [], []
            for g, group in enumerate(groups):
                run = next((r for r in runs if r["server"] == server and route_label(r) == group), None)
                x = g + (i - (len(SERVERS) - 1) / 2) * width
                if run and run[key] > 0:
                    xs.append(x)
                    ys.append(run[key])
                    ax.text(x, run[key] * 1.08, f"{run[key]:,.0f}", ha="center", va="bottom",
                            fontsize=6.5, rotation=90)
                elif run:  # no answer at all (rps) or none within the timeout (p99)
                    ax.text(x, 0.02, "none", transform=ax.get_xaxis_transform(), ha="center",
                            va="bottom", fontsize=6.5, rotation=90, color=colors[server])
            ax.bar(xs, ys, width, label=server, color=colors[server])
        ax.margins(y=0.25)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[1].set_xticks(range(len(groups)), groups)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(SERVERS), fontsize=9,
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    cfg = result["stack_config"]
    fig.suptitle(f"Flask app, one host, wrk over loopback, {result['duration_s']} s per run "
                 f"(stack: {cfg['worker_class']}, {cfg['workers']} workers)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- checking the output (bench-smoke) ----------------------------------------------

def check_output(out):
    """Are latest.json, summary.md and chart.png there and well formed? Never timings."""
    problems = []
    data = json.loads((out / "latest.json").read_text())
    if not isinstance(data.get("machine"), str) or not data["machine"]:
        problems.append("machine is not a non-empty string")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        problems.append("runs is not a non-empty list")
        runs = []
    types = {"server": str, "route": str, "concurrency": int, "scenario": str,
             "rps": (int, float), "p50_ms": (int, float), "p99_ms": (int, float), "errors": int}
    for i, run in enumerate(runs):
        for key, kind in types.items():
            if not isinstance(run.get(key), kind) or isinstance(run.get(key), bool):
                problems.append(f"runs[{i}].{key} is missing or not {kind}")
        if run.get("scenario") not in ("normal", "slowloris"):
            problems.append(f"runs[{i}].scenario is {run.get('scenario')!r}")
    missing = set(SERVERS) - {run.get("server") for run in runs}
    if missing:
        problems.append(f"no run of {sorted(missing)}")
    if not any(run.get("scenario") == "slowloris" for run in runs):
        problems.append("no slowloris run")
    if "provisioning" not in data:
        problems.append("no provisioning key")
    text = (out / "summary.md").read_text()
    for needed in ("| server | route |", "## Targets", "chart.png"):
        if needed not in text:
            problems.append(f"summary.md lacks {needed!r}")
    if len(re.findall(r"^- \*\*(PASS|FAIL|SKIP)\*\* ", text, re.M)) != len(data.get("checks", [])) \
            or not data.get("checks"):
        problems.append("summary.md does not list every target as PASS/FAIL/SKIP")
    if not (out / "chart.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n"):
        problems.append("chart.png is not a PNG")
    return problems


# --- main ---------------------------------------------------------------------------

def main():
    global STACK_URL
    if "--check" in sys.argv:
        out = Path(sys.argv[sys.argv.index("--check") + 1])
        problems = check_output(out)
        print("\n".join(problems) or f"{out}: latest.json, summary.md and chart.png are well formed")
        return 1 if problems else 0

    started = time.monotonic()
    if subprocess.run(["docker", "container", "inspect", CONTAINER],
                      capture_output=True).returncode != 0:
        print(f"no container {CONTAINER}: run `make demo` first", file=sys.stderr)
        return 1
    use_serving_slot()
    result = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "duration_s": DURATION, "warmup_s": WARMUP, "runs": []}
    runs = result["runs"]
    try:
        setup()
        STACK_URL = STACK_URL or find_stack_url()
        wait_ready(STACK_URL + "/healthz", "stack")
        result["stack_config"] = stack_config()
        for server in SERVERS + list(CLASSES):
            start(server)
        for route, concurrency, servers in PLAN:
            order = list(servers)
            if (route, concurrency) == ("/", 50):  # A B .. B A, see PLAN
                order += [name for name in reversed(servers) if "+" not in name]
            for name in order:
                server, _, scenario = name.partition("+")
                if scenario == "slowloris":
                    run = measure_under_slowloris(server)
                else:
                    run = measure(server, route, concurrency)
                first = find(runs, server, route, concurrency, run["scenario"])
                if first:
                    runs[runs.index(first)] = merge(first, run)
                else:
                    runs.append(run)
                print(f"{server:16} {route:13} c{concurrency:<4} {run['scenario']:10} {run['rps']:>9,.0f} rps"
                      f"  p50 {run['p50_ms']:7.1f} ms  p99 {run['p99_ms']:7.1f} ms  "
                      f"errors {run['errors']}", flush=True)
    finally:
        cleanup()

    result["provisioning"] = provisioning() if PROVISION else None
    result["checks"] = checks(runs)
    result["total_s"] = round(time.monotonic() - started)

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    text = summary(result)
    (OUT / "summary.md").write_text(text)
    chart(result, OUT / "chart.png")

    print()
    print(table(runs))
    print()
    for c in result["checks"]:
        print(f"{c['status']}  {c['target']}: {c['measured']}")
    print(f"\nwrote {OUT}/latest.json, summary.md, chart.png in {result['total_s']} s")
    problems = check_output(OUT)
    if problems:
        print("\n".join(["the output is malformed:"] + problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
