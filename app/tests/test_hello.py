import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time

import pytest
from werkzeug.serving import make_server

import hello


@pytest.fixture
def app(tmp_path):
    # SQLite, even where DATABASE_URL is set.
    app = hello.create_app({"TESTING": True, "DATABASE": str(tmp_path / "test.sqlite3"), "DATABASE_URL": ""})
    app.instance_path = str(tmp_path)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def test_index_says_hello(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Hello" in response.data


def test_healthz_reports_release(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASKAPP_RELEASE", "abc123")
    app = hello.create_app({"TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "release": "abc123"}


def test_slow_waits_the_requested_time(client):
    response = client.get("/slow?ms=5")
    assert response.status_code == 200
    assert response.get_json() == {"slept_ms": 5}


@pytest.mark.parametrize("ms", ["-1", "10001", "abc"])
def test_slow_rejects_bad_durations(client, ms):
    assert client.get(f"/slow?ms={ms}").status_code == 400


def test_client_trusts_one_proxy_hop(client):
    # Nginx appends the real peer to X-Forwarded-For; a forged entry before it is ignored.
    response = client.get(
        "/client",
        headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": ""},
    )
    assert response.get_json()["remote_addr"] == "203.0.113.7"
    assert response.get_json()["scheme"] == "https"


def test_visits_count_after_init_db(app, client):
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert client.get("/visits").get_json() == {"visits": 1}
    assert client.get("/visits").get_json() == {"visits": 2}


def test_static_file_exists(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert b"font-family" in response.data


def test_echo_counts_the_posted_body(client):
    response = client.post("/echo", data=b"x" * 1000)
    assert response.status_code == 200
    assert response.get_json()["received"] == 1000


def test_migrations_record_each_run(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    listed = runner.invoke(args=["migrations"]).output.split("\n")
    assert [line.split()[0] for line in listed if line] == ["dev", "dev"]


def test_a_bad_setting_stops_the_app_at_start(monkeypatch):
    monkeypatch.setenv("HELLO_MAX_SLOW_MS", "not-a-number")
    with pytest.raises(ValueError):
        hello.create_app({"TESTING": True})


def sse_events(body):
    """The data of each server-sent event in body, parsed."""
    return [json.loads(line[len("data: "):]) for line in body.decode().splitlines() if line.startswith("data: ")]


def test_events_are_server_sent_events_nginx_does_not_buffer(client):
    response = client.get("/events?count=3&ms=0")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Cache-Control"] == "no-cache"
    assert sse_events(response.data) == [{"n": n, "release": "dev"} for n in range(3)]
    assert response.data.count(b"\n\nid: ") == 2 and response.data.endswith(b"\n\n")


def test_events_are_sent_as_they_are_made(client):
    started = time.monotonic()
    response = client.get("/events?count=3&ms=300", buffered=False)
    chunks = []
    for chunk in response.response:
        chunks.append((time.monotonic() - started, chunk))
    response.close()
    assert len(chunks) == 3
    # The first event comes at once, the others 300 ms apart: nothing waits for the end.
    assert chunks[0][0] < 0.2 and chunks[-1][0] >= 0.55, chunks


@pytest.mark.parametrize("query", ["count=0", "count=1001", "count=x", "ms=-5", "ms=10001", "ms=1.5"])
def test_events_rejects_bad_parameters(client, query):
    assert client.get(f"/events?{query}").status_code == 400


@pytest.fixture
def server(app):
    """The app on a real HTTP server (Werkzeug's, threaded), for WebSockets."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port
    srv.shutdown()
    thread.join(5)


def ws_frame(opcode, payload):
    """A masked client frame (RFC 6455 5.2), payloads under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(conn):
    """One unmasked server frame: (opcode, payload)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", exactly(2))[0]
    return first & 0x0F, exactly(length)


def ws_connect(port, path="/ws"):
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(1)
        assert chunk, head
        head += chunk
    return conn, key, head.decode()


def test_websocket_echoes_messages(server):
    conn, key, head = ws_connect(server)
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert head.startswith("HTTP/1.1 101"), head
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in head.split("\r\n")[1:] if line)}
    assert headers["sec-websocket-accept"] == accept.decode(), head
    for text in ("hello", "ünïcode", "x" * 125):
        conn.sendall(ws_frame(0x1, text.encode()))
        assert ws_read(conn) == (0x1, text.encode())
    conn.sendall(ws_frame(0x2, b"\x00\xff"))
    assert ws_read(conn) == (0x2, b"\x00\xff")
    # A ping gets its pong; a close gets a close back.
    conn.sendall(ws_frame(0x9, b"are you there"))
    assert ws_read(conn) == (0xA, b"are you there")
    conn.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
    assert ws_read(conn)[0] == 0x8
    conn.close()


def test_websocket_route_refuses_plain_http(client):
    assert client.get("/ws").status_code == 400


@pytest.fixture
def notes(app, client):
    """The app's client, its database created."""
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    return client


def test_init_db_is_idempotent(app, client):
    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
    assert client.get("/visits").get_json() == {"visits": 1}


def test_db_upgrade_creates_the_tables_too(app, client):
    assert app.test_cli_runner().invoke(args=["db-upgrade"]).exit_code == 0
    assert client.post("/notes", data={"id": "n1"}).status_code == 201


def test_a_note_is_written_once(notes):
    response = notes.post("/notes", data={"id": "n-1", "body": "first"})
    assert response.status_code == 201
    assert response.get_json() == {"id": "n-1", "created": True}
    # The same note again (a retried request) is no second row; another body is a conflict.
    assert notes.post("/notes", data={"id": "n-1", "body": "first"}).status_code == 200
    assert notes.post("/notes", json={"id": "n-1", "body": "other"}).status_code == 409
    assert notes.get("/notes").get_json() == {"count": 1, "ids": ["n-1"]}
    note = notes.get("/notes/n-1").get_json()
    assert (note["id"], note["body"]) == ("n-1", "first")


def test_a_note_can_be_posted_as_json(notes):
    assert notes.post("/notes", json={"id": "j.1", "body": "from json"}).status_code == 201
    assert notes.get("/notes/j.1").get_json()["body"] == "from json"


def test_a_missing_note_is_404(notes):
    assert notes.get("/notes/nope").status_code == 404


@pytest.mark.parametrize("data", [{}, {"id": ""}, {"id": "a b"}, {"id": "x" * 65}, {"id": "a/b"}])
def test_a_note_needs_a_valid_id(notes, data):
    assert notes.post("/notes", data=data).status_code == 400


def test_a_note_body_is_bounded(notes):
    assert notes.post("/notes", json={"id": "big", "body": "x" * 10001}).status_code == 400
    assert notes.post("/notes", json={"id": "num", "body": 5}).status_code == 400


def test_many_notes_are_counted_without_their_ids(notes):
    for n in range(101):
        assert notes.post("/notes", data={"id": f"n{n}"}).status_code == 201
    assert notes.get("/notes").get_json() == {"count": 101}


def test_page_lists_the_catalogue_from_the_database(notes):
    page = notes.get("/page").get_data(as_text=True)
    assert page.count('<tr id="item-') == 50
    assert "Item 001: Compact Widget" in page and "Item 050:" in page and "Item 051:" not in page
    assert notes.get("/page?rows=3").get_data(as_text=True).count('<tr id="item-') == 3
    assert notes.get("/page?rows=500").get_data(as_text=True).count('<tr id="item-') == 500


@pytest.mark.parametrize("rows", ["0", "501", "x", "-1"])
def test_page_rejects_bad_row_counts(notes, rows):
    assert notes.get(f"/page?rows={rows}").status_code == 400


def test_the_catalogue_is_filled_once(app, notes):
    assert app.test_cli_runner().invoke(args=["init-db"]).exit_code == 0
    assert notes.get("/page?rows=500").get_data(as_text=True).count('<tr id="item-') == 500
