"""The targets: ratios between runs of the same round, reported as the median of the
rounds with their min and max (latest.json's `ratios`), and checked against a target.

Each ratio is computed within one round (its runs ran one right after the other, so
the noise of a shared machine hits both sides alike), then summarised over the
rounds. A ratio whose rounds spread over more than NOISY_PP percentage points is
flagged as noisy: for a ratio in %, max - min; for the others, (max - min) / |median|.
"""

import statistics
from dataclasses import dataclass
from typing import Callable

from run import PACED_RPS

# The limit on a ratio's spread over its rounds, in percentage points.
NOISY_PP = 10
# /slow?ms=100 at c200: at most 200 / 0.1 s = 2,000 requests/s.
SLOW_LIMIT_RPS = 2000


@dataclass(frozen=True)
class Ratio:
    name: str
    what: str  # in words, for summary.md
    unit: str  # "x", "%", "ms" or "MB"
    target: float
    better: str  # "higher" (the target is a minimum) or "lower" (a maximum)
    # One round's value, from a lookup of that round's runs:
    # run(server, route, concurrency, scenario="normal") -> a run's dict or None.
    value: Callable
    # Errors that fail the target whatever the value (one round's), or None.
    errors: Callable | None = None


def rps_ratio(a, b, percent=False):
    """a's requests per second over b's (in % when percent), or None."""
    if not a or not b or not b["rps"]:
        return None
    return a["rps"] / b["rps"] * (100 if percent else 1)


def p99_ratio(a, b):
    return a["p99_ms"] / b["p99_ms"] if a and b and b["p99_ms"] else None


def cpu_ratio(a, b):
    """a's Nginx CPU time per request over b's, or None."""
    if not a or not b or not a.get("nginx_us_per_request") or not b.get("nginx_us_per_request"):
        return None
    return a["nginx_us_per_request"] / b["nginx_us_per_request"]


def p50_difference(a, b):
    return a["p50_ms"] - b["p50_ms"] if a and b else None


def of_limit(slow):
    """/slow?ms=100 at c200: its requests/s in % of SLOW_LIMIT_RPS, or None."""
    return slow["rps"] / SLOW_LIMIT_RPS * 100 if slow else None


def memory_mb(run):
    """The PSS of Nginx and of the run's apps halfway through its load, in MB, or None."""
    load = (run or {}).get("memory", {}).get("load")
    return load["nginx"]["pss_mb"] + load["app"]["pss_mb"] if load else None


def errors_beside(run):
    """A run's errors and those of the loads beside it (a memory run of several apps)."""
    run = run or {}
    return run.get("errors", 0) + sum(b["errors"] for b in run.get("memory", {}).get("beside", []))


RATIOS = [
    Ratio("hello_vs_dev", "stack vs flask-dev on `/` c50, requests/s", "x", 3.5, "higher",
          lambda run: rps_ratio(run("stack", "/", 50), run("flask-dev", "/", 50))),
    Ratio("page_vs_direct", "stack vs gunicorn-direct on `/page` c50, requests/s", "%", 95, "higher",
          lambda run: rps_ratio(run("stack", "/page", 50), run("gunicorn-direct", "/page", 50), True)),
    Ratio("page_vs_dev", "stack vs flask-dev on `/page` c50, requests/s", "x", 3.5, "higher",
          lambda run: rps_ratio(run("stack", "/page", 50), run("flask-dev", "/page", 50))),
    Ratio("slow_c200_of_limit", f"stack on `/slow?ms=100` c200, of its {SLOW_LIMIT_RPS:,} requests/s limit",
          "%", 90, "higher", lambda run: of_limit(run("stack", "/slow?ms=100", 200))),
    Ratio("slowloris_kept", "stack's `/` c50 requests/s kept under slowloris (the attacker on the "
          "load generator's CPU), with 0 errors", "%", 90, "higher",
          lambda run: rps_ratio(run("stack", "/", 50, "slowloris"), run("stack", "/", 50), True),
          errors=lambda run: (run("stack", "/", 50, "slowloris") or {}).get("errors", 0)),
    Ratio("static_vs_minimal", "`return 200` c50 through our nginx.conf vs a minimal one, requests/s",
          "%", 90, "higher",
          lambda run: rps_ratio(run("nginx-static", "/", 50), run("nginx-minimal", "/", 50), True)),
    Ratio("hol_p99_factor", "stack's `/page` p99 at c95 while 5 more connections ask for "
          "`/slow?ms=1000`, vs without them", "x", 2, "lower",
          lambda run: p99_ratio(run("stack", "/page", 95, "hol"), run("stack", "/page", 95))),
    Ratio("h2_vs_h1", "stack on `/` c50: HTTP/2 (h2load, 4 streams per connection) vs HTTP/1.1 (wrk), "
          "requests/s, with 0 errors", "%", 90, "higher",
          lambda run: rps_ratio(run("stack", "/", 50, "h2"), run("stack", "/", 50), True),
          errors=lambda run: (run("stack", "/", 50, "h2") or {}).get("errors", 0)),
    Ratio("proxy_cost_vs_return200", "Nginx's CPU time per request (its cgroup): the stack's proxied "
          "`/` vs `return 200` in a copy of its HTTPS server block, HTTP/1.1 c50", "x", 3, "lower",
          lambda run: cpu_ratio(run("stack", "/", 50), run("stack-return200", "/", 50))),
    Ratio("proxy_added_p50_ms", f"the latency Nginx adds at {PACED_RPS} requests/s (no CPU saturated): "
          "stack's p50 minus gunicorn-direct's, `/`", "ms", 0.5, "lower",
          lambda run: p50_difference(run("stack", "/", 4, "paced"), run("gunicorn-direct", "/", 4, "paced"))),
    Ratio("memory_1cpu_mb", "memory (PSS) of Nginx and of two apps as the roles size them for a 1-CPU "
          "VPS (3 gevent workers each), halfway through `/page` c50 on both at once, with 0 errors", "MB", 400,
          "lower", lambda run: memory_mb(run("two-apps-1cpu", "/page", 50, "memory")),
          errors=lambda run: errors_beside(run("two-apps-1cpu", "/page", 50, "memory"))),
]


def rounds_of(runs):
    """The round numbers in runs (latest.json's runs, each with its "rounds")."""
    return sorted({r["round"] for run in runs for r in run.get("rounds", [])})


def lookup(runs, round_no):
    """run(server, route, concurrency, scenario) for one round: that run's dict, its
    figures those of the round."""
    def run(server, route, concurrency, scenario="normal"):
        found = next((r for r in runs if (r["server"], r["route"], r["concurrency"], r["scenario"])
                      == (server, route, concurrency, scenario)), None)
        one = next((r for r in (found or {}).get("rounds", []) if r["round"] == round_no), None)
        return dict(found, **one) if one else None
    return run


def spread_pp(ratio, low, high, median):
    """The rounds' spread in percentage points: of the ratio itself for a ratio in %,
    else of the median (a median near 0, as a difference may have, is noisy)."""
    if ratio.unit == "%":
        return high - low
    scale = abs(median) or max(abs(low), abs(high))
    return (high - low) / scale * 100 if scale else 0.0


def compute(runs, ratios=RATIOS):
    """latest.json's ratios: for each, its value in each round, their median, min and
    max, the target, whether the median meets it (None: not measured), and noise."""
    results = []
    for ratio in ratios:
        values, errors = [], 0
        for round_no in rounds_of(runs):
            run = lookup(runs, round_no)
            value = ratio.value(run)
            if value is not None:
                values.append(round(value, 3))
            errors += ratio.errors(run) if ratio.errors else 0
        entry = {"name": ratio.name, "what": ratio.what, "unit": ratio.unit, "target": ratio.target,
                 "better": ratio.better, "rounds": values, "median": None, "min": None, "max": None,
                 "spread_pp": None, "noisy": None, "met": None}
        if values:
            median = statistics.median(values)
            meets = median >= ratio.target if ratio.better == "higher" else median <= ratio.target
            spread = spread_pp(ratio, min(values), max(values), median)
            entry.update(median=round(median, 3), min=min(values), max=max(values),
                         spread_pp=round(spread, 1), noisy=spread > NOISY_PP,
                         met=meets and errors == 0)
            if ratio.errors:
                entry["errors"] = errors
        results.append(entry)
    return results


def number(value, unit):
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.0f}%"
    return f"{value:,.1f} {unit}"


def describe(entry):
    """One ratio in words: "median 4.10x (3.95x-4.20x over 3 rounds), noisy"."""
    if entry["median"] is None:
        return "not measured"
    unit, n = entry["unit"], len(entry["rounds"])
    text = (f"median {number(entry['median'], unit)} ({number(entry['min'], unit)} to "
            f"{number(entry['max'], unit)} over {n} round{'s' if n != 1 else ''})")
    if entry.get("errors"):
        text += f", {entry['errors']} errors"
    if entry["noisy"]:
        text += f", **noisy** (spread {entry['spread_pp']:.0f} points)"
    return text


def target_text(entry):
    sign = ">=" if entry["better"] == "higher" else "<="
    return f"`{entry['name']}` {sign} {number(entry['target'], entry['unit'])}: {entry['what']}"


def checks(ratios):
    """The targets as PASS/FAIL/SKIP lines (latest.json's checks)."""
    return [{"status": "SKIP" if r["met"] is None else ("PASS" if r["met"] else "FAIL"),
             "target": target_text(r), "measured": describe(r)} for r in ratios]


def check_format(ratios, names):
    """Problems with latest.json's ratios: every name in names, once, in its format."""
    problems = []
    if not isinstance(ratios, list):
        return ["ratios is not a list"]
    seen = [r.get("name") for r in ratios if isinstance(r, dict)]
    if sorted(seen) != sorted(names):
        problems.append(f"ratios are {sorted(seen)}, not {sorted(names)}")
    number_types = (int, float)
    for r in ratios:
        if not isinstance(r, dict):
            problems.append(f"a ratio is not an object: {r!r}")
            continue
        name = r.get("name")
        if r.get("unit") not in ("x", "%", "ms", "MB"):
            problems.append(f"{name}: unit {r.get('unit')!r}")
        if r.get("better") not in ("higher", "lower"):
            problems.append(f"{name}: better {r.get('better')!r}")
        if not isinstance(r.get("target"), number_types):
            problems.append(f"{name}: target is not a number")
        values = r.get("rounds")
        if not isinstance(values, list) or not all(isinstance(v, number_types) for v in values):
            problems.append(f"{name}: rounds is not a list of numbers")
            continue
        if not values:
            if any(r.get(k) is not None for k in ("median", "min", "max", "met")):
                problems.append(f"{name}: no rounds, yet a median, min, max or met")
            continue
        if not all(isinstance(r.get(k), number_types) for k in ("median", "min", "max", "spread_pp")):
            problems.append(f"{name}: median, min, max or spread_pp is not a number")
        elif not (r["min"] <= r["median"] <= r["max"]) or (r["min"], r["max"]) != (min(values), max(values)):
            problems.append(f"{name}: min {r['min']}, median {r['median']}, max {r['max']} "
                            f"do not fit its rounds {values}")
        if not isinstance(r.get("noisy"), bool) or not isinstance(r.get("met"), bool):
            problems.append(f"{name}: noisy or met is not true or false")
    return problems
