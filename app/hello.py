"""The sample app: small, but it shows why Flask wants Nginx and Gunicorn in front.

Routes:
  /          hello
  /healthz   {"status": "ok", "release": "<deployed release id>"}
  /echo      POST: {"received": <bytes of the body>, "release": ...}, a write-like request
  /slow?ms=N waits N ms, like a slow backend call (blocks a naive server)
  /client    what the app sees of the client (address and scheme behind the proxy)
  /visits    a counter in SQLite, kept in the app's state directory
  /ws        WebSocket: echoes every message back (flask-sock)
  /events?count=N&ms=M
             server-sent events: N events, one every M ms, each sent as it is made
  /static/   files served by Nginx directly in production
"""

import json
import os
import sqlite3
import time

from flask import Flask, Response, jsonify, request
from flask_sock import Sock
from werkzeug.middleware.proxy_fix import ProxyFix


def bounded_int(raw, default, low, high):
    """A query parameter as an int from low to high, else None."""
    if raw is None:
        return default
    value = int(raw) if raw.isdigit() else -1
    return value if low <= value <= high else None


def create_app(test_config=None):
    # systemd sets STATE_DIRECTORY for the service (StateDirectory=); locally we
    # fall back to Flask's default instance folder.
    app = Flask(__name__, instance_path=os.environ.get("STATE_DIRECTORY") or None)
    app.config.from_mapping(
        RELEASE=os.environ.get("FLASKAPP_RELEASE", "dev"),
        DATABASE=os.path.join(app.instance_path, "hello.sqlite3"),
        # Settings come from the environment; a bad value stops the app at start.
        MAX_SLOW_MS=int(os.environ.get("HELLO_MAX_SLOW_MS", "10000")),
        # /events: at most this many events, at most this far apart.
        MAX_EVENTS=1000,
        MAX_EVENT_MS=10000,
        # WebSockets (flask-sock): the app pings an idle client every 25 s, well within
        # Nginx's proxy_read_timeout (60 s), so a quiet connection is not cut; a message
        # above 64 KiB closes the connection.
        SOCK_SERVER_OPTIONS={"ping_interval": 25, "max_message_size": 64 * 1024},
    )
    if test_config:
        app.config.update(test_config)

    # Nginx is the one trusted proxy in front: take the client address and
    # scheme from the headers it sets, and from nobody else.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)

    def db():
        return sqlite3.connect(app.config["DATABASE"], timeout=5)

    @app.cli.command("init-db")
    def init_db():
        """Create the database if it is missing (safe to run on every start)."""
        os.makedirs(app.instance_path, exist_ok=True)
        with db() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS visits (n INTEGER NOT NULL)")
            if conn.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 0:
                conn.execute("INSERT INTO visits (n) VALUES (0)")
        print(f"database ready: {app.config['DATABASE']}")

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """The release's migrations (run once per release, as its release command):
        here they only record that they ran, and for which release."""
        os.makedirs(app.instance_path, exist_ok=True)
        with db() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (release TEXT NOT NULL, at TEXT NOT NULL)")
            conn.execute("INSERT INTO migrations VALUES (?, datetime('now'))", (app.config["RELEASE"],))
        print(f"migrated for release {app.config['RELEASE']}")

    @app.cli.command("migrations")
    def migrations():
        """List the releases the migrations ran for, oldest first."""
        with db() as conn:
            for release, at in conn.execute("SELECT release, at FROM migrations ORDER BY rowid"):
                print(release, at)

    @app.get("/")
    def index():
        return "Hello from Flask, served by Gunicorn behind Nginx!\n"

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", release=app.config["RELEASE"])

    @app.post("/echo")
    def echo():
        return jsonify(received=len(request.get_data()), release=app.config["RELEASE"])

    @app.get("/slow")
    def slow():
        raw = request.args.get("ms", "100")
        ms = int(raw) if raw.isdigit() else -1
        limit = app.config["MAX_SLOW_MS"]
        if not 0 <= ms <= limit:
            return jsonify(error=f"ms must be an integer from 0 to {limit}"), 400
        time.sleep(ms / 1000)
        return jsonify(slept_ms=ms)

    @app.get("/client")
    def client():
        return jsonify(remote_addr=request.remote_addr, scheme=request.scheme, host=request.host)

    @app.get("/visits")
    def visits():
        with db() as conn:
            conn.execute("UPDATE visits SET n = n + 1")
            (n,) = conn.execute("SELECT n FROM visits").fetchone()
        return jsonify(visits=n)

    sock = Sock(app)

    @sock.route("/ws")
    def ws_echo(ws):
        # Gunicorn's gevent worker serves one connection per greenlet: an open
        # WebSocket costs a greenlet, not a worker. The loop ends when the client
        # closes (flask-sock ends the request on ConnectionClosed).
        while True:
            ws.send(ws.receive())

    @app.get("/events")
    def events():
        count = bounded_int(request.args.get("count"), 10, 1, app.config["MAX_EVENTS"])
        ms = bounded_int(request.args.get("ms"), 1000, 0, app.config["MAX_EVENT_MS"])
        if count is None or ms is None:
            return jsonify(error=f"count must be from 1 to {app.config['MAX_EVENTS']}, "
                                 f"ms from 0 to {app.config['MAX_EVENT_MS']}"), 400
        release = app.config["RELEASE"]

        def stream():
            for n in range(count):
                if n:
                    time.sleep(ms / 1000)
                yield f"id: {n}\nevent: tick\ndata: {json.dumps({'n': n, 'release': release})}\n\n"

        # X-Accel-Buffering: no tells Nginx to pass each event on as it arrives
        # instead of holding the response in its proxy buffer until it ends.
        return Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


app = create_app()
