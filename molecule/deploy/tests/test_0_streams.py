"""WebSockets and server-sent events through Nginx over HTTPS (the sample app's /ws and
/events), with streams.py, a standard-library client, inside the instance. The vhost's
proxy_read_timeout is 8 s here: a connection with a message every second outlasts it,
and a stream that stays silent longer is cut by it (so the timeout is in force)."""

import pytest
from conftest import READ_TIMEOUT, start_stream, stream, stream_result
from testlib import http


@pytest.fixture(scope="module", autouse=True)
def long_streams(host):
    """Started first, so that they run while the quick tests do."""
    # 14 messages, one a second: 13 s, longer than proxy_read_timeout.
    start_stream(host, "long-ws", "ws", "--interval", "1", "--seconds", "13")
    start_stream(host, "long-sse", "sse", "--path", "/events?count=14&ms=1000", "--seconds", "40")
    # Two events 10 s apart: a silence longer than proxy_read_timeout.
    start_stream(host, "silent-sse", "sse", "--path", "/events?count=2&ms=10000", "--seconds", "40")


def test_websocket_echo_round_trip(host):
    ws = stream(host, "ws", "--interval", "0.2", "--seconds", "1")
    # 101 with the right Sec-WebSocket-Accept (else streams.py says so in "ended").
    assert ws["status"] == 101 and ws["ended"] == "done", ws
    assert ws["sent"] >= 3 and ws["echoed"] == ws["sent"] and ws["mismatched"] == 0, ws


def test_a_plain_request_to_the_websocket_route_is_refused(host):
    # Only an upgrade reaches the WebSocket route (Werkzeug answers 400 otherwise).
    assert http(host, "https://127.0.0.1/ws").status == 400


def test_server_sent_events_arrive_as_they_are_made(host):
    # 4 events a second apart: the stream lasts 3 s. Held in Nginx's buffer, all of
    # them would arrive at the end; passed on, the first arrives at once.
    sse = stream(host, "sse", "--path", "/events?count=4&ms=1000")
    assert sse["status"] == 200 and sse["content_type"].startswith("text/event-stream"), sse
    assert sse["ended"] == "done" and [e["n"] for e in sse["events"]] == [0, 1, 2, 3], sse
    assert sse["times"][0] < 1.0 and sse["times"][-1] >= 2.5, sse
    # Each one within a second of when it was made (n seconds in).
    assert all(t < n + 1 for n, t in enumerate(sse["times"])), sse


def test_connections_with_messages_flowing_outlast_proxy_read_timeout(host):
    ws = stream_result(host, "long-ws", timeout=40)
    assert ws["status"] == 101 and ws["ended"] == "done", ws
    assert ws["echoed"] == ws["sent"] >= 13 and ws["mismatched"] == 0, ws
    assert ws["seconds"] > READ_TIMEOUT + 3, ws
    sse = stream_result(host, "long-sse", timeout=40)
    assert sse["ended"] == "done" and len(sse["events"]) == 14, sse
    assert sse["times"][-1] > READ_TIMEOUT + 3, sse
    # A stream silent for longer than proxy_read_timeout is cut by Nginx: the setting is
    # in force, and only the messages kept the others open.
    silent = stream_result(host, "silent-sse", timeout=40)
    assert silent["ended"] == "eof" and len(silent["events"]) == 1, silent
    assert READ_TIMEOUT - 1 < silent["seconds"] < 10, silent
