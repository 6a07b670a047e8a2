"""Reporting: summary.md, chart.png and latest.json, from the result of a run (a
dict, as latest.json holds it), and the check of that output. The targets are
targets.py's."""

import json
import re

import targets
from run import HOL_SLOW_CONNECTIONS, HOL_SLOW_ROUTE, PACED_RPS, SCENARIOS, find
from servers import HOL, MEMORY, PACED, SLOWLORIS, Apps, WorkerClass


def route_label(run):
    label = f"{run['route']} c{run['concurrency']}"
    return label if run["scenario"] == "normal" else f"{label} {run['scenario']}"


def table(runs):
    lines = ["| server | route | conc. | scenario | rps | p50 ms | p99 ms | errors |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['server']} | `{r['route']}` | {r['concurrency']} | {r['scenario']} | "
                     f"{r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |")
    return "\n".join(lines)


def with_and_without(runs, servers, load):
    """(server, its run without the side load, its run with it) for each server
    measured on load (a scenario with a side load), and on its route and
    concurrency without it."""
    route, concurrency, _ = load
    for server in servers:
        if load in server.loads:
            alone, beside = find(runs, server.name, route, concurrency), find(runs, server.name, *load)
            if alone and beside:
                yield server.name, alone, beside


def slowloris_lines(runs, servers):
    lines = []
    for server, normal, loris in with_and_without(runs, servers, SLOWLORIS):
        if normal["rps"]:
            stats = loris.get("slowloris", {})
            lines.append(f"- {server}: {loris['rps'] / normal['rps']:.0%} of its throughput kept "
                         f"({loris['rps']:,.0f} vs {normal['rps']:,.0f} rps), {loris['errors']} "
                         f"errors, p99 {loris['p99_ms']:.1f} ms (normally {normal['p99_ms']:.1f} ms); "
                         f"{stats.get('opened', 0):.0f} slow connections opened, "
                         f"{stats.get('reopened', 0):.0f} reopened after the server dropped them")
    return lines


def cpu_lines(runs):
    stack = find(runs, "stack", "/", 50)
    if not stack or not stack.get("cpu_s", {}).get("python"):
        return ["Not measured."]
    cpu = stack["cpu_s"]
    lines = [f"During the stack's `/` c50 runs Nginx used {cpu['nginx']:.1f} CPU seconds and "
             f"Gunicorn with Flask {cpu['python']:.1f}: a request to `/` costs Nginx (TLS included) "
             f"{cpu['nginx'] / cpu['python']:.0%} of what it costs the app. Nginx's worker count "
             "(`nginx_worker_processes`, one per four cores) follows from it."]
    page = find(runs, "stack", "/page", 50)
    if page and page.get("cpu_s", {}).get("python"):
        lines += ["", f"On `/page` (a query and a template) the same proxying is "
                  f"{page['cpu_s']['nginx'] / page['cpu_s']['python']:.0%} of the app's CPU."]
    lines += ["", "Nginx's CPU time per request, from its unit's cgroup (`cpu.stat`), the median of "
              "the rounds:", ""]
    for label, server, load in (("proxied `/`, HTTPS/1.1 c50", "stack", ("/", 50)),
                                ("`return 200`, HTTPS/1.1 c50, same server block", "stack-return200", ("/", 50)),
                                ("proxied `/`, HTTP/2 c50", "stack", ("/", 50, "h2")),
                                ("`return 200`, HTTP/2 c50, same server block", "stack-return200", ("/", 50, "h2")),
                                ("proxied `/`, HTTPS/1.1 paced", "stack", PACED),
                                ("`return 200`, HTTPS/1.1 paced, same server block", "stack-return200", PACED)):
        run = find(runs, server, *load)
        if run and run.get("nginx_us_per_request"):
            lines.append(f"- {label}: {run['nginx_us_per_request']:.0f} µs at {run['rps']:,.0f} requests/s")
    return lines + ["", "(As fast as they go, `return 200` runs at many times the proxied rate, and Nginx "
                    "spends less per request when each wake-up finds many ready: the paced runs compare "
                    f"the two at the same {PACED_RPS} requests/s.)"]


def latency_lines(runs):
    """The paced runs: what Nginx adds to a request's time when nothing is saturated."""
    stack, direct = find(runs, "stack", "/", 4, "paced"), find(runs, "gunicorn-direct", "/", 4, "paced")
    if not stack or not direct:
        return ["Not measured."]
    return [f"`/` at {PACED_RPS} requests/s over 4 kept-alive connections (h2load, HTTP/1.1), the "
            "median of the rounds:", "",
            f"- stack (HTTPS through Nginx): p50 {stack['p50_ms']:.2f} ms, p99 {stack['p99_ms']:.2f} ms",
            f"- gunicorn-direct (plain HTTP): p50 {direct['p50_ms']:.2f} ms, p99 {direct['p99_ms']:.2f} ms",
            f"- Nginx adds {stack['p50_ms'] - direct['p50_ms']:.2f} ms at p50 and "
            f"{stack['p99_ms'] - direct['p99_ms']:.2f} ms at p99"]


def hol_lines(runs, servers):
    """Head-of-line blocking: /page at c95, alone and beside slow requests."""
    lines = []
    for server, alone, mixed in with_and_without(runs, servers, HOL):
        if alone["p99_ms"]:
            slow = mixed.get("hol", {})
            lines.append(f"- {server}: `/page` p99 {mixed['p99_ms']:,.1f} ms beside the slow requests, "
                         f"{alone['p99_ms']:,.1f} ms without ({mixed['p99_ms'] / alone['p99_ms']:.1f}x); "
                         f"{mixed['rps']:,.0f} vs {alone['rps']:,.0f} rps, {mixed['errors']} errors; the slow "
                         f"requests: {slow.get('requests', 0):,.0f} answered, {slow.get('errors', 0):,.0f} errors")
    return lines


def memory_lines(result, servers):
    """Memory (PSS, and RSS) of Nginx and of each app's processes, idle and under load
    on `/page` at c50; and what each worker count costs and serves."""
    runs = result["runs"]
    stack = find(runs, "stack", *MEMORY)
    if not stack or "load" not in stack.get("memory", {}):
        return ["Not measured."]

    def mb(figures):
        return f"{figures['pss_mb']:.0f} MB PSS ({figures['rss_mb']:.0f} MB RSS, {figures['processes']:.0f} processes)"

    memory = stack["memory"]
    lines = [f"The stack, idle: Nginx {mb(memory['idle']['nginx'])}, the app {mb(memory['idle']['app'])}.",
             f"Halfway through {result['duration_s']} s of `/page` at c50: Nginx {mb(memory['load']['nginx'])}, the app "
             f"{mb(memory['load']['app'])}. (PSS shares each shared page among the processes that map it: "
             "it adds up; RSS counts shared pages in every process.)", "",
             "`flaskapp_workers` (gevent, our gunicorn.conf.py, behind our Nginx; the servers have one "
             "CPU here), on `/page` at c50:", ""]
    for server in (s for s in servers if isinstance(s, WorkerClass) and MEMORY in s.loads):
        run = find(runs, server.name, *MEMORY)
        if run and "load" in run.get("memory", {}):
            app = run["memory"]["load"]["app"]
            lines.append(f"- {server.name}: {run['rps']:,.0f} rps, p99 {run['p99_ms']:.1f} ms; "
                         f"{app['pss_mb']:.0f} MB PSS under load ({app['rss_mb']:.0f} MB RSS)")
    for server in (s for s in servers if isinstance(s, Apps)):
        run = find(runs, server.name, *MEMORY)
        if run and "load" in run.get("memory", {}):
            load = run["memory"]["load"]
            served = [run["rps"]] + [b["rps"] for b in run["memory"].get("beside", [])]
            errors = run["errors"] + sum(b["errors"] for r in run["rounds"] for b in r["memory"].get("beside", []))
            lines += ["", f"{server.name} ({server.about}), halfway through `/page` at c50 on each: Nginx "
                      f"{mb(load['nginx'])} and the apps {mb(load['app'])}, "
                      f"**{targets.memory_mb(run):.0f} MB** in all; they served "
                      f"{' and '.join(f'{rps:,.0f}' for rps in served)} rps (medians), {errors} errors in all."]
    return lines


def worker_classes(servers):
    return [s for s in servers if isinstance(s, WorkerClass)]


def class_lines(runs, servers):
    lines = []
    for server in worker_classes(servers):
        plain, slow = find(runs, server.name, "/", 50), find(runs, server.name, "/slow?ms=100", 200)
        if plain and slow:
            lines.append(f"- {server.worker_class}: `/` c50 {plain['rps']:,.0f} rps, p99 "
                         f"{plain['p99_ms']:.1f} ms; `/slow?ms=100` c200 {slow['rps']:,.0f} rps "
                         f"({slow['rps'] / 2000:.0%} of 2,000), p99 {slow['p99_ms']:.0f} ms, "
                         f"{slow['errors']} errors")
    return lines


def provisioning_lines(prov):
    if not prov:
        return ["Not measured in this run (smoke mode or --no-provision)."]
    if "error" in prov:
        return [f"Not measured: {prov['error']}."]
    deploys = prov.get("deploys_s")  # None in results from when one deploy was timed
    if deploys:
        deploy = (f"- deploy of a new release (`playbooks/deploy.yml`, a code-only change), "
                  f"{len(deploys)} runs: {', '.join(f'{s:.1f}' for s in deploys)} s, "
                  f"median **{prov['deploy_s']:.1f} s**")
    else:
        deploy = f"- deploy of a new release (`playbooks/deploy.yml`): **{prov['deploy_s']:.1f} s**"
    lines = [f"- container start and boot, SSH ready: {prov['boot_s']:.1f} s",
             f"- fresh converge of `site.yml`: **{prov['converge_s']:.1f} s**",
             f"- idempotent re-run: **{prov['rerun_s']:.1f} s**, changed={prov['rerun_changed']}",
             deploy, "", f"Slowest of the {prov['tasks_converge']} tasks of the fresh converge "
             f"({prov['tasks_converge_s']:.1f} s in all, by profile_tasks):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_converge"]]
    lines += ["", f"Slowest of the {prov['tasks_rerun']} tasks of the re-run "
              f"({prov['tasks_rerun_s']:.1f} s in all):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_rerun"]]
    lines += ["", f"Slowest of the {prov['tasks_deploy']} tasks of the {'median ' if deploys else ''}deploy "
              f"({prov['tasks_deploy_s']:.1f} s in all):", ""]
    lines += [f"- {t['task']}: {t['s']:.1f} s" for t in prov["slowest_tasks_deploy"]]
    return lines


def summary(result, servers):
    cfg = result["stack_config"]
    threads = ", ".join(f"{s.worker_class} with {s.threads} threads per worker"
                        for s in worker_classes(servers) if s.threads)
    pinning = result.get("pinning")
    rounds = result.get("rounds", 1)
    lines = [
        "# Benchmark: Flask behind Nginx and Gunicorn",
        "",
        f"Measured {result['date']} by `make bench`: {rounds} interleaved round{'s' if rounds != 1 else ''} "
        f"of every run ({result['duration_s']} s per run after {result['warmup_s']} s of warm-up), "
        "all on one host, inside the demo VPS container, over loopback. "
        + (f"The load generators (wrk, the slowloris clients) ran on CPU {pinning['load']}, the "
           f"servers under test on CPU {pinning['servers']} (taskset, and systemd's CPUAffinity). "
           if pinning else "Load generators and servers shared the CPUs (not pinned). ")
        + f"Machine: {result['machine']}.",
        "",
        f"Stack under test ({cfg['url']}{f', slot ' + cfg['slot'] if cfg.get('slot') else ''}): "
        f"Gunicorn {cfg['worker_class']}, "
        f"{cfg['workers']} workers x {cfg['per_worker']}, Nginx upstream keepalive "
        f"{cfg['nginx_upstream_keepalive']}. "
        "rps counts 2xx/3xx answers per second; errors are socket errors (connect, read, write, "
        "an answer later than 2 s) and 4xx/5xx answers (and, in a run where no request got an "
        "answer at all, every connection). Each figure is the median of the rounds.",
        "",
        "![requests per second and p99 latency per server, medians and their range](chart.png)",
        "",
        "## Targets",
        "",
        "Ratios between servers, each computed within one round (the runs it compares ran one "
        "right after the other) and shown as the median of the rounds with its range; never "
        "asserted. A ratio whose rounds spread over more than "
        f"{targets.NOISY_PP} percentage points is marked noisy.",
        "",
    ]
    lines += [f"- **{c['status']}** {c['target']}: {c['measured']}" for c in result["checks"]]
    if cfg.get("rate_limited") and any(r["server"] == "stack" and r["errors"] for r in result["runs"]):
        lines += ["", "Note: the stack's vhost limits requests or connections per client, and all of "
                  "the load comes from 127.0.0.1: its errors are the limit's 429 answers. Exempt "
                  "127.0.0.1 from the limits (nginx_limit_exempt) to measure the stack itself."]
    # (Results from before slowloris_connections was recorded: 400, the default then.)
    lines += ["", "## Slowloris", "",
              f"{result.get('slowloris_connections', 400)} connections send their headers one line a second "
              "and never finish, while normal clients load `/` at c50:", ""]
    lines += slowloris_lines(result["runs"], servers) or ["Not measured."]
    lines += ["", "## Head-of-line blocking", "",
              f"95 connections load `/page` while {HOL_SLOW_CONNECTIONS} more ask for "
              f"`{HOL_SLOW_ROUTE}` back to back, against `/page` at c95 alone:", ""]
    lines += hol_lines(result["runs"], servers) or ["Not measured."]
    lines += ["", "## Latency Nginx adds", ""] + latency_lines(result["runs"])
    lines += ["", "## Memory", ""] + memory_lines(result, servers)
    lines += ["", "## Where the CPU goes", ""] + cpu_lines(result["runs"])
    lines += ["", "## Worker classes", "",
              "Our gunicorn.conf.py with each Gunicorn worker class, behind our Nginx with the "
              f"stack's proxy settings, over plain HTTP{f' ({threads})' if threads else ''}; "
              "the choice of `flaskapp_worker_class`:", ""]
    lines += class_lines(result["runs"], servers) or ["Not measured."]
    lines += ["", "## Provisioning", ""] + provisioning_lines(result.get("provisioning"))
    lines += ["", "## All runs", "", table(result["runs"]), ""]
    return "\n".join(lines)


def chart(result, path, servers):
    """Requests per second and p99 latency per server with a color, grouped by load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in servers if s.color]
    runs = result["runs"]
    groups = []
    for r in runs:
        if route_label(r) not in groups:
            groups.append(route_label(r))
    width = 0.8 / len(shown)
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for ax, key, title in ((axes[0], "rps", "requests per second (log scale, higher is better)"),
                           (axes[1], "p99_ms", "p99 latency, ms (log scale, lower is better)")):
        ax.set_yscale("log")
        for i, server in enumerate(shown):
            xs, ys, spans = [], [], ([], [])
            for g, group in enumerate(groups):
                run = next((r for r in runs if r["server"] == server.name and route_label(r) == group),
                           None)
                x = g + (i - (len(shown) - 1) / 2) * width
                if run and run[key] > 0:
                    # The median of the rounds, and a line from their min to their max.
                    values = [r[key] for r in run.get("rounds", [])] or [run[key]]
                    xs.append(x)
                    ys.append(run[key])
                    spans[0].append(run[key] - min(values))
                    spans[1].append(max(values) - run[key])
                    ax.text(x, max(values) * 1.08, f"{run[key]:,.0f}", ha="center", va="bottom",
                            fontsize=6.5, rotation=90)
                elif run:  # no answer at all (rps) or none within the timeout (p99)
                    ax.text(x, 0.02, "none", transform=ax.get_xaxis_transform(), ha="center",
                            va="bottom", fontsize=6.5, rotation=90, color=server.color)
            ax.bar(xs, ys, width, label=server.name, color=server.color, yerr=spans,
                   error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
        ax.margins(y=0.25)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[1].set_xticks(range(len(groups)), groups)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(shown), fontsize=9,
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    cfg = result["stack_config"]
    fig.suptitle(f"Flask app, one host, wrk over loopback, {result['duration_s']} s per run, "
                 f"median of {result.get('rounds', 1)} rounds with their range "
                 f"(stack: {cfg['worker_class']}, {cfg['workers']} workers)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(result, out, servers):
    """latest.json, summary.md and chart.png in the directory out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "summary.md").write_text(summary(result, servers))
    chart(result, out / "chart.png", servers)


def check_output(out, servers):
    """Are latest.json, summary.md and chart.png there and well formed, with a run of
    every server? Never timings."""
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
        if run.get("scenario") not in SCENARIOS:
            problems.append(f"runs[{i}].scenario is {run.get('scenario')!r}")
    missing = {s.name for s in servers} - {run.get("server") for run in runs}
    if missing:
        problems.append(f"no run of {sorted(missing)}")
    if not any(run.get("scenario") == "slowloris" for run in runs):
        problems.append("no slowloris run")
    for i, run in enumerate(runs):
        rounds = run.get("rounds")
        if not isinstance(rounds, list) or not rounds or not all(
                isinstance(r, dict) and isinstance(r.get("rps"), (int, float)) for r in rounds):
            problems.append(f"runs[{i}].rounds is not a list of each round's figures")
    if "provisioning" not in data:
        problems.append("no provisioning key")
    problems += targets.check_format(data.get("ratios"), [r.name for r in targets.RATIOS])
    if data.get("checks") != targets.checks(data.get("ratios") or []):
        problems.append("checks are not those of the ratios")
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
