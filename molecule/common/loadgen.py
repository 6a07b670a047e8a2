#!/usr/bin/env python3
"""Bounded load against Nginx inside a test instance, while a deploy runs.

Threads send GET /healthz over kept-alive HTTPS connections, at a steady rate
that leaves the deploy its share of the CPU, until the stop file
appears, or the time or request limit is reached (it always stops by itself).
The result is JSON: requests, non-2xx answers, connection errors, latency, and
how many requests each release served.
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time


def connect(args, context):
    return http.client.HTTPSConnection(args.host, args.port, timeout=30, context=context,
                                       source_address=(args.source, 0))


def send(conn, args):
    conn.request("GET", args.path, headers={"Host": "localhost"})
    response = conn.getresponse()
    return response, response.read()


def worker(args, stop, results, lock):
    context = ssl._create_unverified_context()  # the instance's self-signed certificate
    conn = None
    local = {"requests": 0, "non_2xx": 0, "errors": 0, "latencies": [], "releases": {}}
    interval = args.threads / args.rate  # each thread's share of the request rate
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
        if conn is None:
            conn = connect(args, context)
        started = time.monotonic()
        try:
            response, body = send(conn, args)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed this kept-alive connection (a graceful reload closes
            # idle ones): like any HTTP client, retry once on a new connection.
            conn.close()
            conn = connect(args, context)
            try:
                response, body = send(conn, args)
            except (OSError, http.client.HTTPException):
                local["errors"] += 1
                conn.close()
                conn = None
                continue
        except (OSError, http.client.HTTPException):
            local["errors"] += 1
            conn.close()
            conn = None
            continue
        local["latencies"].append(time.monotonic() - started)
        local["requests"] += 1
        if not 200 <= response.status < 300:
            local["non_2xx"] += 1
        else:
            release = json.loads(body).get("release", "?")
            local["releases"][release] = local["releases"].get(release, 0) + 1
        if response.will_close:
            conn.close()
            conn = None
    with lock:
        for key in ("requests", "non_2xx", "errors"):
            results[key] += local[key]
        results["latencies"] += local["latencies"]
        for release, count in local["releases"].items():
            results["releases"][release] = results["releases"].get(release, 0) + count


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--source", default="127.0.0.3", help="client address (exempt from rate limits)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300, help="requests per second, all threads together")
    parser.add_argument("--seconds", type=float, default=180, help="hard time limit")
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    stop, lock = threading.Event(), threading.Lock()
    results = {"requests": 0, "non_2xx": 0, "errors": 0, "latencies": [], "releases": {}}
    threads = [threading.Thread(target=worker, args=(args, stop, results, lock)) for _ in range(args.threads)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while time.monotonic() - started < args.seconds and not os.path.exists(args.stop_file):
        time.sleep(0.2)
        with lock:
            if results["requests"] >= args.max_requests:
                break
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies = sorted(results.pop("latencies")) or [0.0]
    results.update(
        seconds=round(elapsed, 1),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
        p99_ms=round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        max_ms=round(latencies[-1] * 1000, 1),
    )
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f)
    os.rename(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
