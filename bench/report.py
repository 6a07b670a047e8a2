"""Reporting: the targets (checks), summary.md, chart.png and latest.json, from the
result of a run (a dict, as latest.json holds it), and the check of that output."""

import json
import re

from run import find
from servers import WorkerClass


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


def slowloris_lines(runs, servers):
    lines = []
    for server in (s.name for s in servers if s.slowloris):
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
    lines = [
        "# Benchmark: Flask behind Nginx and Gunicorn",
        "",
        f"Measured {result['date']} by `make bench` ({result['duration_s']} s per run after "
        f"{result['warmup_s']} s of warm-up, wrk with 2 threads), all on one host, inside the demo "
        f"VPS container, over loopback. Machine: {result['machine']}.",
        "",
        f"Stack under test ({cfg['url']}{f', slot ' + cfg['slot'] if cfg.get('slot') else ''}): "
        f"Gunicorn {cfg['worker_class']}, "
        f"{cfg['workers']} workers x {cfg['per_worker']}, Nginx upstream keepalive "
        f"{cfg['nginx_upstream_keepalive']}. "
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
    # (Results from before slowloris_connections was recorded: 400, the default then.)
    lines += ["", "## Slowloris", "",
              f"{result.get('slowloris_connections', 400)} connections send their headers one line a second "
              "and never finish, while normal clients load `/` at c50:", ""]
    lines += slowloris_lines(result["runs"], servers) or ["Not measured."]
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
            xs, ys = [], []
            for g, group in enumerate(groups):
                run = next((r for r in runs if r["server"] == server.name and route_label(r) == group),
                           None)
                x = g + (i - (len(shown) - 1) / 2) * width
                if run and run[key] > 0:
                    xs.append(x)
                    ys.append(run[key])
                    ax.text(x, run[key] * 1.08, f"{run[key]:,.0f}", ha="center", va="bottom",
                            fontsize=6.5, rotation=90)
                elif run:  # no answer at all (rps) or none within the timeout (p99)
                    ax.text(x, 0.02, "none", transform=ax.get_xaxis_transform(), ha="center",
                            va="bottom", fontsize=6.5, rotation=90, color=server.color)
            ax.bar(xs, ys, width, label=server.name, color=server.color)
        ax.margins(y=0.25)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[1].set_xticks(range(len(groups)), groups)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(shown), fontsize=9,
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    cfg = result["stack_config"]
    fig.suptitle(f"Flask app, one host, wrk over loopback, {result['duration_s']} s per run "
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
        if run.get("scenario") not in ("normal", "slowloris"):
            problems.append(f"runs[{i}].scenario is {run.get('scenario')!r}")
    missing = {s.name for s in servers} - {run.get("server") for run in runs}
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
