#!/usr/bin/env python3
"""Benchmark the demo VPS: our stack against the alternatives, in one run on one host.

    python bench/bench.py               # the full benchmark (make bench)
    python bench/bench.py --smoke       # every server once, briefly (make bench-smoke)
    python bench/bench.py --check DIR   # is DIR/latest.json (and the rest) well formed?
    python bench/bench.py --help        # the settings

Everything runs inside the demo container (`make demo`), against loopback: the
load generator (Debian's wrk, installed by the setup step), the servers started for
the comparison (as transient systemd units and a second nginx, all stopped and
removed at the end) and the slowloris clients. The servers are listed in
servers.py (one object each); run.py measures them, report.py writes
latest.json, summary.md and chart.png.
"""

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import report
import run
import targets
from servers import SERVERS
from vps import Vps

HERE = Path(__file__).resolve().parent


def parse_args(argv, environ):
    """The settings: options, else the environment's BENCH_* variables, else defaults
    (some of them depend on --smoke)."""
    parser = argparse.ArgumentParser(
        description="Benchmark the demo VPS: our stack against the alternatives.")
    parser.add_argument("--smoke", action="store_true",
                        help="every server and scenario once, 1 s per run, no provisioning, "
                             "output in bench/results/smoke")
    parser.add_argument("--check", metavar="DIR", type=Path,
                        help="only check that DIR holds well-formed results")
    parser.add_argument("--duration", type=int, default=environ.get("BENCH_DURATION"),
                        help="seconds per measured run (BENCH_DURATION; 6, smoke 1)")
    parser.add_argument("--warmup", type=int, default=environ.get("BENCH_WARMUP"),
                        help="seconds of unrecorded load before each run (BENCH_WARMUP; 1, smoke 0)")
    parser.add_argument("--slowloris", type=int, metavar="CONNECTIONS",
                        default=environ.get("BENCH_SLOWLORIS", 400),
                        help="slow connections in the slowloris scenario (BENCH_SLOWLORIS; 400)")
    parser.add_argument("--rounds", type=int, default=environ.get("BENCH_ROUNDS"),
                        help="times every run is made, interleaved (BENCH_ROUNDS; 3, smoke 2)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default={"1": True, "0": False}.get(environ.get("BENCH_PIN", ""), True),
                        help="load generators on one CPU, servers on the others (BENCH_PIN=1/0; yes)")
    parser.add_argument("--provision", action=argparse.BooleanOptionalAction,
                        default={"1": True, "0": False}.get(environ.get("BENCH_PROVISION", "")),
                        help="time provisioning with bench/provision.sh (BENCH_PROVISION=1/0; "
                             "yes, smoke no)")
    parser.add_argument("--container", default=environ.get("BENCH_CONTAINER", "flask-vps-demo"),
                        help="the VPS container (BENCH_CONTAINER; flask-vps-demo)")
    parser.add_argument("--app", default="hello", help="the app under test (hello)")
    parser.add_argument("--stack-url", default=environ.get("BENCH_STACK_URL"),
                        help="the stack's base URL inside the container (BENCH_STACK_URL; found "
                             "out: http://127.0.0.1:80, or https://127.0.0.1:443 when port 80 "
                             "redirects there)")
    parser.add_argument("--out", type=Path, default=environ.get("BENCH_OUT"),
                        help="where to write the results (BENCH_OUT; bench/results, smoke "
                             "bench/results/smoke)")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1 if args.smoke else 6
    if args.rounds is None:
        args.rounds = 2 if args.smoke else 3
    if args.warmup is None:
        args.warmup = 0 if args.smoke else 1
    if args.provision is None:
        args.provision = not args.smoke
    if args.out is None:
        args.out = HERE / "results" / ("smoke" if args.smoke else "")
    return args


def check(out):
    problems = report.check_output(out, SERVERS)
    print("\n".join(problems) or f"{out}: latest.json, summary.md and chart.png are well formed")
    return 1 if problems else 0


def main(argv=None, environ=None):
    args = parse_args(sys.argv[1:] if argv is None else argv,
                      os.environ if environ is None else environ)
    if args.check:
        return check(args.check)

    started = time.monotonic()
    vps = Vps(args.container, args.app, args.stack_url)
    if not vps.exists():
        print(f"no container {vps.container}: run `make demo` first", file=sys.stderr)
        return 1
    vps.find_serving_slot()
    vps.find_stack_url()
    settings = run.Settings(duration=args.duration, warmup=args.warmup, slowloris=args.slowloris,
                            rounds=args.rounds, pin=args.pin)
    result = {"machine": run.machine(vps),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "duration_s": settings.duration, "warmup_s": settings.warmup,
              "rounds": settings.rounds, "slowloris_connections": settings.slowloris,
              "stack_config": run.stack_config(vps)}
    result["runs"] = run.measure_all(vps, SERVERS, settings)
    result["pinning"] = ({"load": vps.load_cpus, "servers": vps.server_cpus}
                         if vps.server_cpus else None)
    result["ratios"] = targets.compute(result["runs"])
    result["checks"] = targets.checks(result["ratios"])
    result["provisioning"] = run.provisioning() if args.provision else None
    result["total_s"] = round(time.monotonic() - started)
    report.write(result, args.out, SERVERS)

    print()
    print(report.table(result["runs"]))
    print()
    for c in result["checks"]:
        print(f"{c['status']}  {c['target']}: {c['measured']}")
    print(f"\nwrote {args.out}/latest.json, summary.md, chart.png in {result['total_s']} s")
    problems = report.check_output(args.out, SERVERS)
    if problems:
        print("\n".join(["the output is malformed:"] + problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
