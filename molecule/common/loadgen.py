#!/usr/bin/env python3
"""Bounded load against Nginx inside a test instance, while a deploy runs.

Client threads send GET /healthz over kept-alive HTTPS connections, every Nth
request a POST /echo with a body (or, with --post-path /notes, a note with a unique
id: the ids the app acknowledged are written to --acked), at a steady total rate,
until the stop file appears, or the time or request limit is reached (it always stops by itself).
Other threads keep long requests (/slow?ms=N) in flight all the time, as a slow
report or upload would. The result is JSON: requests, POSTs, non-2xx answers,
connection errors, retries on a closed idle connection, and latency (p50, p99,
worst) of the short requests; the long
requests' count, failures and worst time; how many requests each release served;
and each failed request (the first 200): when it was sent (the epoch, in seconds),
its kind (GET, POST or long) and its status (0: no answer).
"""

import argparse
import http.client
import json
import os
import ssl
import threading
import time

POST_BODY = b"x" * 2048


def connect(args, context, timeout=30):
    return http.client.HTTPSConnection(args.host, args.port, timeout=timeout, context=context,
                                       source_address=(args.source, 0))


def send(conn, method, path, host, body=None):
    """Send a request and read the status line: (response) or an exception."""
    if method == "POST" and body is not None:
        conn.request("POST", path, body=body,
                     headers={"Host": host, "Content-Type": "application/x-www-form-urlencoded"})
    elif method == "POST":
        conn.request("POST", path, body=POST_BODY,
                     headers={"Host": host, "Content-Type": "application/octet-stream"})
    else:
        conn.request("GET", path, headers={"Host": host})
    return conn.getresponse()


def exchange(state, args, context, method, path, timeout=30, body=None):
    """One request on the thread's kept-alive connection; (status, body) or None on error.

    A kept-alive connection that the server closed while it was idle (Nginx's graceful
    reload closes idle ones) fails before any byte of a response: a TLS EOF, a reset, a
    closed connection, depending on timing. Then the request was never read, and it is
    retried once on a new connection, as browsers do for a reused connection. A failure
    on a new connection, or after the status line, is an error.
    """
    for attempt in (1, 2):
        reused = state.get("conn") is not None and state.get("used", False)
        if state.get("conn") is None:
            state["conn"], state["used"] = connect(args, context, timeout), False
        try:
            response = send(state["conn"], method, path, args.host_header, body)
        except (OSError, http.client.HTTPException):
            state["conn"].close()
            state["conn"] = None
            if attempt == 1 and reused:
                state["retries"] = state.get("retries", 0) + 1
                state["post_retries"] = state.get("post_retries", 0) + (method == "POST")
                continue
            return None
        try:
            body = response.read()
        except (OSError, http.client.HTTPException):
            state["conn"].close()
            state["conn"] = None
            return None
        state["used"] = True
        if response.will_close:
            state["conn"].close()
            state["conn"] = None
        return response.status, body
    return None


def client(args, stop, results, lock, number):
    """Short requests at this thread's share of the rate: GETs, every Nth a POST."""
    context = ssl._create_unverified_context()  # the instance's self-signed certificate
    state = {}
    local = {"requests": 0, "posts": 0, "non_2xx": 0, "errors": 0, "latencies": [], "releases": {}, "acked": [],
             "failures": []}
    interval = args.threads / args.rate
    # The threads take turns (staggered by their number), so requests arrive evenly
    # spaced, not in bursts of one per thread.
    next_at = time.monotonic() + interval * number / args.threads
    n = 0
    while not stop.is_set():
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
        n += 1
        post = args.post_every > 0 and n % args.post_every == 0
        started = time.monotonic()
        note = f"{args.id_prefix}-{number}-{n}" if post and args.post_path == "/notes" else None
        sent = time.time()
        answer = exchange(state, args, context, "POST" if post else "GET", args.post_path if post else args.path,
                          body=f"id={note}".encode() if note else None)
        if answer is None or not 200 <= answer[0] < 300:
            local["failures"].append([round(sent, 3), "POST" if post else "GET", answer[0] if answer else 0])
        if answer is None:
            local["errors"] += 1
            continue
        status, body = answer
        local["latencies"].append(time.monotonic() - started)
        local["requests"] += 1
        local["posts"] += post
        if not 200 <= status < 300:
            local["non_2xx"] += 1
        else:
            release = json.loads(body).get("release", "?")
            local["releases"][release] = local["releases"].get(release, 0) + 1
            if note:  # 201 written, or 200: a retried POST found it written
                local["acked"].append(note)
    local["retries"] = state.get("retries", 0)
    local["post_retries"] = state.get("post_retries", 0)
    with lock:
        for key in ("requests", "posts", "non_2xx", "errors", "retries", "post_retries"):
            results[key] += local[key]
        results["latencies"] += local["latencies"]
        results["acked"] += local["acked"]
        results["failures"] += local["failures"]
        for release, count in local["releases"].items():
            results["releases"][release] = results["releases"].get(release, 0) + count


def long_client(args, stop, results, lock):
    """Keep one long request in flight until told to stop."""
    context = ssl._create_unverified_context()
    state = {}
    while not stop.is_set():
        started, sent = time.monotonic(), time.time()
        answer = exchange(state, args, context, "GET", f"/slow?ms={args.long_ms}",
                          timeout=args.long_ms / 1000 + 60)
        took = time.monotonic() - started
        with lock:
            results["long_requests"] += 1
            results["long_max_ms"] = max(results["long_max_ms"], round(took * 1000, 1))
            if answer is None or not 200 <= answer[0] < 300:
                results["long_failed"] += 1
                results["failures"].append([round(sent, 3), "long", answer[0] if answer else 0])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--source", default="127.0.0.3", help="client address (exempt from rate limits)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=300, help="short requests per second, all threads together")
    parser.add_argument("--host-header", default="localhost", help="the Host header (--host gives the TLS name)")
    parser.add_argument("--post-every", type=int, default=10, help="every Nth short request is a POST (0: none)")
    parser.add_argument("--post-path", default="/echo", choices=["/echo", "/notes"])
    parser.add_argument("--id-prefix", default="note", help="the notes' ids start with it")
    parser.add_argument("--acked", help="write the ids of the notes answered 201 here, one a line")
    parser.add_argument("--long", type=int, default=2, help="threads that keep a long request in flight")
    parser.add_argument("--long-ms", type=int, default=5000, help="how long each long request takes")
    parser.add_argument("--seconds", type=float, default=180, help="hard time limit")
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    stop, lock = threading.Event(), threading.Lock()
    results = {"requests": 0, "posts": 0, "non_2xx": 0, "errors": 0, "retries": 0, "post_retries": 0,
               "latencies": [], "releases": {}, "acked": [], "failures": [],
               "long_requests": 0, "long_failed": 0, "long_max_ms": 0.0}
    threads = [threading.Thread(target=client, args=(args, stop, results, lock, number))
               for number in range(args.threads)]
    threads += [threading.Thread(target=long_client, args=(args, stop, results, lock)) for _ in range(args.long)]
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
    acked = results.pop("acked")
    results["acked"] = len(acked)
    results["failures"] = sorted(results["failures"])[:200]
    if args.acked:
        with open(args.acked, "w") as f:
            f.write("".join(f"{note}\n" for note in acked))
    results.update(
        seconds=round(elapsed, 1),
        rate=args.rate,
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
