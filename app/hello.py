"""The sample app: small, but it shows why Flask wants Nginx and Gunicorn in front.

Routes:
  /          hello
  /healthz   {"status": "ok", "release": "<deployed release id>"}
  /echo      POST: {"received": <bytes of the body>, "release": ...}, a write-like request
  /slow?ms=N waits N ms, like a slow backend call (blocks a naive server)
  /client    what the app sees of the client (address and scheme behind the proxy)
  /visits    a counter in the database
  /page?rows=N
             a page as real apps serve it: N rows (default 50, up to 500) of a
             catalogue queried from the database, rendered by a Jinja template with
             a loop (templates/page.html); 1 to 3 ms of app CPU, where / takes 0.15
  /notes     POST id=<unique id>&body=<text> (form or JSON): 201 once the row is
             committed, 200 when that id exists with the same body, 409 with another;
             GET: {"count": N, "ids": [...]} (ids when 100 or fewer)
  /notes/<id> GET: the note, or 404
  /ws        WebSocket: echoes every message back (flask-sock)
  /events?count=N&ms=M
             server-sent events: N events, one every M ms, each sent as it is made
  /static/   files served by Nginx directly in production

The database: PostgreSQL when DATABASE_URL is set (postgresql://user:password@host/db,
or ...@/db?host=/run/postgresql for the local socket), else an SQLite file in the
app's state directory. `flask --app hello init-db` creates the tables (safe to run on
every start, and by several processes at once); `db-upgrade` records a release's
migrations, `migrations` lists them.
"""

import contextlib
import json
import os
import re
import sqlite3
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request
from flask_sock import Sock
from werkzeug.middleware.proxy_fix import ProxyFix


def bounded_int(raw, default, low, high):
    """A query parameter as an int from low to high, else None."""
    if raw is None:
        return default
    value = int(raw) if raw.isdigit() else -1
    return value if low <= value <= high else None


# A note's id: chosen by the client, so that a retried POST cannot write it twice.
NOTE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_NOTE_BYTES = 10000
# The ids of the notes are listed when there are this many or fewer.
MAX_LISTED_NOTES = 100
# The catalogue /page lists from: init-db fills it once with this many items.
CATALOGUE_ITEMS = 500

# The tables, per database. CREATE ... IF NOT EXISTS: init-db runs before every start.
SCHEMA = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS visits (n INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS migrations (release TEXT NOT NULL, at TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, created TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)",
    ],
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS visits (n BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS migrations (id BIGSERIAL PRIMARY KEY, release TEXT NOT NULL, at TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, created TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "price_cents INTEGER NOT NULL, stock INTEGER NOT NULL)",
    ],
}
# PostgreSQL: schema changes take this transaction-level advisory lock first, so
# processes that run init-db or db-upgrade at once wait for each other.
SCHEMA_LOCK = 0x68656C6C6F


ADJECTIVES = ("sturdy", "compact", "shiny", "quiet", "spare", "blue", "large", "tiny")


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def create_app(test_config=None):
    # systemd sets STATE_DIRECTORY for the service (StateDirectory=); locally we
    # fall back to Flask's default instance folder.
    app = Flask(__name__, instance_path=os.environ.get("STATE_DIRECTORY") or None)
    app.config.from_mapping(
        RELEASE=os.environ.get("FLASKAPP_RELEASE", "dev"),
        DATABASE=os.path.join(app.instance_path, "hello.sqlite3"),
        # PostgreSQL when set (the flaskapp role puts it in the env file).
        DATABASE_URL=os.environ.get("DATABASE_URL", ""),
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

    def dialect():
        return "postgresql" if app.config["DATABASE_URL"] else "sqlite"

    @contextlib.contextmanager
    def db():
        """A connection whose work is committed when the block ends without an error
        (rolled back otherwise), then closed. Queries use ? for parameters."""
        if dialect() == "postgresql":
            import psycopg  # only needed with DATABASE_URL

            conn = psycopg.connect(app.config["DATABASE_URL"], connect_timeout=5)
        else:
            conn = sqlite3.connect(app.config["DATABASE"], timeout=5)
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def run(conn, sql, params=()):
        """Execute sql (? placeholders) with the database's own placeholders."""
        return conn.execute(sql.replace("?", "%s") if dialect() == "postgresql" else sql, params)

    def lock_schema(conn):
        """Serialise schema changes with other processes, until this transaction ends."""
        if dialect() == "postgresql":
            run(conn, "SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
        else:
            conn.execute("BEGIN IMMEDIATE")

    def create_schema(conn):
        for statement in SCHEMA[dialect()]:
            conn.execute(statement)
        # One row, inserted once even by two processes at once (under the lock).
        run(conn, "INSERT INTO visits (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM visits)")
        # The catalogue, filled once (under the lock too).
        if run(conn, "SELECT 1 FROM items LIMIT 1").fetchone() is None:
            items = [(n, f"Item {n:03d}: {ADJECTIVES[n % len(ADJECTIVES)]} widget", 99 + 37 * n % 9900,
                      n * 7 % 50) for n in range(1, CATALOGUE_ITEMS + 1)]
            for item in items:
                run(conn, "INSERT INTO items (id, name, price_cents, stock) VALUES (?, ?, ?, ?)", item)

    def where():
        """The database, for messages (never the password)."""
        if dialect() == "postgresql":
            return f"postgresql database {urlsplit(app.config['DATABASE_URL']).path.lstrip('/')}"
        return app.config["DATABASE"]

    def ensure_instance_dir():
        if dialect() == "sqlite":
            os.makedirs(app.instance_path, exist_ok=True)

    @app.cli.command("init-db")
    def init_db():
        """Create the tables if they are missing (safe to run on every start)."""
        ensure_instance_dir()
        with db() as conn:
            lock_schema(conn)
            create_schema(conn)
        print(f"database ready: {where()}")

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """The release's migrations (run once per release, as its release command):
        here they create the tables and record that they ran, and for which release."""
        ensure_instance_dir()
        with db() as conn:
            lock_schema(conn)
            create_schema(conn)
            run(conn, "INSERT INTO migrations (release, at) VALUES (?, ?)", (app.config["RELEASE"], now()))
        print(f"migrated for release {app.config['RELEASE']}")

    @app.cli.command("migrations")
    def migrations():
        """List the releases the migrations ran for, oldest first."""
        order = "id" if dialect() == "postgresql" else "rowid"
        with db() as conn:
            for release, at in run(conn, f"SELECT release, at FROM migrations ORDER BY {order}").fetchall():
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
            (n,) = run(conn, "UPDATE visits SET n = n + 1 RETURNING n").fetchone()
        return jsonify(visits=n)

    @app.get("/page")
    def page():
        rows = bounded_int(request.args.get("rows"), 50, 1, CATALOGUE_ITEMS)
        if rows is None:
            return jsonify(error=f"rows must be from 1 to {CATALOGUE_ITEMS}"), 400
        with db() as conn:
            items = run(conn, "SELECT id, name, price_cents, stock FROM items ORDER BY id LIMIT ?",
                        (rows,)).fetchall()
        return render_template("page.html", items=items, release=app.config["RELEASE"])

    @app.post("/notes")
    def add_note():
        data = (request.get_json(silent=True) if request.is_json else request.form) or {}
        note_id, body = data.get("id"), data.get("body", "")
        if not isinstance(note_id, str) or not NOTE_ID.fullmatch(note_id):
            return jsonify(error="id must be 1 to 64 letters, digits, dots, dashes or underscores"), 400
        if not isinstance(body, str) or len(body.encode()) > MAX_NOTE_BYTES:
            return jsonify(error=f"body must be text of at most {MAX_NOTE_BYTES} bytes"), 400
        with db() as conn:
            written = run(conn, "INSERT INTO notes (id, body, created) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                          (note_id, body, now())).rowcount == 1
            existing = None if written else run(conn, "SELECT body FROM notes WHERE id = ?", (note_id,)).fetchone()
        # Only here, after the commit, is the write acknowledged.
        if written:
            return jsonify(id=note_id, created=True), 201
        if existing and existing[0] == body:
            return jsonify(id=note_id, created=False), 200
        return jsonify(error=f"note {note_id} exists with another body"), 409

    @app.get("/notes/<note_id>")
    def get_note(note_id):
        with db() as conn:
            row = run(conn, "SELECT id, body, created FROM notes WHERE id = ?", (note_id,)).fetchone()
        if row is None:
            return jsonify(error="no such note"), 404
        return jsonify(id=row[0], body=row[1], created=row[2])

    @app.get("/notes")
    def list_notes():
        with db() as conn:
            (count,) = run(conn, "SELECT COUNT(*) FROM notes").fetchone()
            ids = ([note_id for (note_id,) in run(conn, "SELECT id FROM notes ORDER BY id").fetchall()]
                   if count <= MAX_LISTED_NOTES else None)
        return jsonify(count=count, ids=ids) if ids is not None else jsonify(count=count)

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
