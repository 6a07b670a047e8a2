#!/usr/bin/env python3
"""Long-lived connections through Nginx over HTTPS, from inside a test instance, with
the standard library only. It always stops by itself (--seconds).

  streams.py ws  [--interval S] [--seconds S]    a WebSocket to /ws (RFC 6455): sends a
                 masked text message every interval and checks its echo; answers pings
  streams.py sse --path '/events?count=N&ms=M'    reads server-sent events as they come

The result is JSON (on stdout, or --out written atomically): what was exchanged, when
(seconds since the connection started, and wall-clock times), and how it ended:
"done" (the client closed it, or the stream ended normally), "eof" (the server side
closed it first) or "error: ...".
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def connect(args):
    """A TLS connection (HTTP/1.1 by ALPN) to Nginx, from args.source."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the instance's self-signed certificate
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((args.host, args.port), timeout=args.timeout, source_address=(args.source, 0))
    return context.wrap_socket(raw, server_hostname=args.host_header)


class Reader:
    """Buffered reads from a socket: exact byte counts and lines."""

    def __init__(self, conn):
        self.conn, self.buf = conn, b""

    def fill(self):
        chunk = self.conn.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        data, _, self.buf = self.buf.partition(b"\r\n")
        return data

    def head(self):
        """Status code and headers (lower-case names) of an HTTP/1.1 response."""
        status = int(self.line().split()[1])
        headers = {}
        while line := self.line():
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers


def frame(opcode, payload):
    """A masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(reader):
    """One server frame (never masked): (opcode, payload)."""
    first, second = reader.exactly(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", reader.exactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", reader.exactly(8))[0]
    return first & 0x0F, reader.exactly(size)


def request(args, conn, extra=""):
    conn.sendall(f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header}\r\n{extra}\r\n".encode())


def websocket(args, result):
    started = time.monotonic()
    conn = connect(args)
    reader = Reader(conn)
    key = base64.b64encode(os.urandom(16)).decode()
    request(args, conn, f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n")
    status, headers = reader.head()
    result.update(status=status, opened_at=time.time())
    expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    if status != 101 or headers.get("sec-websocket-accept") != expected:
        result.update(ended="error: no WebSocket handshake", headers=headers)
        return
    result.update(sent=0, echoed=0, mismatched=0, pings=0, echo_times=[])
    n = 0
    while time.monotonic() - started < args.seconds:
        n += 1
        message = f"message {n} " + "x" * 100
        conn.sendall(frame(0x1, message.encode()))
        result["sent"] += 1
        while True:  # the echo, answering pings on the way
            opcode, payload = read_frame(reader)
            if opcode == 0x9:
                result["pings"] += 1
                conn.sendall(frame(0xA, payload))
                continue
            if opcode == 0x8:
                result["ended"] = "closed by the server: " + repr(payload)
                return
            break
        result["echoed"] += 1
        result["mismatched"] += payload.decode() != message
        result["echo_times"].append(round(time.monotonic() - started, 2))
        result["last_echo_at"] = time.time()
        time.sleep(args.interval)
    conn.sendall(frame(0x8, struct.pack("!H", 1000)))
    while read_frame(reader)[0] != 0x8:
        pass
    result["ended"] = "done"


def events(args, result):
    """Server-sent events; the response comes chunked from Nginx (HTTP/1.1)."""
    started = time.monotonic()
    conn = connect(args)
    reader = Reader(conn)
    request(args, conn, "Accept: text/event-stream\r\n")
    status, headers = reader.head()
    result.update(status=status, opened_at=time.time(), content_type=headers.get("content-type"),
                  events=[], times=[])
    if "chunked" not in headers.get("transfer-encoding", ""):
        result.update(ended="error: expected a chunked stream", headers=headers)
        return
    pending = b""
    while time.monotonic() - started < args.seconds:
        size = int(reader.line().split(b";")[0], 16)
        if size == 0:
            result["ended"] = "done"
            return
        pending += reader.exactly(size)
        reader.exactly(2)  # the chunk's CRLF
        now = round(time.monotonic() - started, 3)
        while b"\n\n" in pending:
            event, _, pending = pending.partition(b"\n\n")
            for line in event.decode().splitlines():
                if line.startswith("data: "):
                    result["events"].append(json.loads(line[6:]))
                    result["times"].append(now)
                    result["last_event_at"] = time.time()
    result["ended"] = "done: time is up"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["ws", "sse"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--host-header", default="localhost")
    parser.add_argument("--source", default="127.0.0.1", help="client address")
    parser.add_argument("--path", help="default: /ws or /events")
    parser.add_argument("--interval", type=float, default=1.0, help="ws: seconds between messages")
    parser.add_argument("--seconds", type=float, default=30, help="hard time limit")
    parser.add_argument("--timeout", type=float, default=20, help="longest wait for any read")
    parser.add_argument("--out", help="write the result here (default: stdout)")
    args = parser.parse_args()
    args.path = args.path or {"ws": "/ws", "sse": "/events"}[args.mode]

    result = {"mode": args.mode, "path": args.path}
    started = time.monotonic()
    try:
        (websocket if args.mode == "ws" else events)(args, result)
    except (EOFError, ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
        # The other side closed the connection (with or without TLS's close_notify).
        result["ended"] = "eof"
    except (OSError, ValueError) as e:
        result["ended"] = f"error: {type(e).__name__}: {e}"
    result.update(seconds=round(time.monotonic() - started, 2), ended_at=time.time())
    text = json.dumps(result)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text)
        os.rename(args.out + ".tmp", args.out)
    else:
        print(text)


if __name__ == "__main__":
    main()
