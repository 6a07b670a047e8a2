"""The deploy scenario's tests: helpers from testlib, a playbook run under load, and
the sources the deploys ship."""

import json
import os
import shutil
import time

import pytest
from testlib import Load, http, run_playbook, wait_until

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
PLAYBOOKS = os.path.join(PROJECT, "playbooks")
# No request may wait this long while a deploy switches. A restart-based deploy made
# every client wait 9.7 s (a restart waits for the 5-s requests in flight, then for
# the app to boot); a blue/green switch makes them wait milliseconds: 200 to 400 ms
# worst on a quiet machine, but 1,120 to 1,477 ms in `make test`, where another
# scenario shares the 2 cores. The bound keeps a wide margin above that noise and
# well below a restart.
WORST_MS = 2500
# Load: high is 300 requests/s, low 20/s; every 10th is a POST; two clients keep a
# 5-second request in flight all the time.
RATES = {"high": 300, "low": 20}
# The vhost's proxy_read_timeout in this scenario (molecule.yml), in seconds, and
# Gunicorn's graceful_timeout (the role's default): an old slot's last connections end
# by then.
READ_TIMEOUT = 8
GRACEFUL_TIMEOUT = 30


def serving_release(host):
    return http(host, "https://127.0.0.1/healthz").json()["release"]


def playbook(name):
    return os.path.join(PLAYBOOKS, name)


def under_load(host, phase, book, *extra, rate="high"):
    """Run a playbook while the load generator runs; return (play result, load figures)."""
    with Load(host, phase, rate=RATES[rate]) as load:
        started = time.monotonic()
        result = run_playbook(host, book, *extra)
        took = time.monotonic() - started
    return result, load.record(play_seconds=round(took, 1))


def assert_unnoticed(load, minimum):
    """No failure of any kind, and no request that waited: what users would notice."""
    assert load["errors"] == 0, load
    assert load["non_2xx"] == 0, load
    assert load["requests"] >= minimum and load["posts"] >= minimum // 20, load
    assert load["max_ms"] < WORST_MS, load
    assert load["long_requests"] >= 2 and load["long_failed"] == 0, load
    # Nginx's graceful reload closes idle kept-alive client connections, as every reload
    # does; clients reopen them (once per connection and reload, as browsers do). More
    # would mean connections cut in the middle of requests.
    assert load["retries"] <= 2 * 8, load


def extra_vars(tmp_path, **app_changes):
    """An extra-vars file with the scenario's app changed (as the inventory has it)."""
    app = {"name": "hello", "src": os.path.join(PROJECT, "app"), "entrypoint": "hello:app",
           "pre_start": "flask --app hello init-db", "release_command": "flask --app hello db-upgrade",
           "nginx": {"proxy_read_timeout": f"{READ_TIMEOUT}s"}}
    app.update(app_changes)
    path = tmp_path / f"vars-{abs(hash(json.dumps(app, sort_keys=True)))}.json"
    path.write_text(json.dumps({"flaskapp_apps": [app]}))
    return f"@{path}"


def copy_app(base, name, change):
    """A copy of app/ with change(path) applied."""
    path = base / name
    shutil.copytree(os.path.join(PROJECT, "app"), path, ignore=shutil.ignore_patterns("__pycache__"))
    change(path)
    return str(path)


@pytest.fixture(scope="session")
def sources(tmp_path_factory):
    """Changed copies of app/: two new versions (v2 renames its stylesheet), a broken one."""
    base = tmp_path_factory.mktemp("releases")

    def v2(path):
        (path / "VERSION").write_text("2\n")
        (path / "static" / "style.css").rename(path / "static" / "style.v2.css")

    def broken(path):
        with open(path / "hello.py", "a") as f:
            f.write('\nraise RuntimeError("this release is broken")\n')

    return {
        "v2": copy_app(base, "v2", v2),
        "v3": copy_app(base, "v3", lambda path: (path / "VERSION").write_text("3\n")),
        "broken": copy_app(base, "broken", broken),
    }


def stream(host, mode, *args):
    """Run streams.py (molecule/deploy/streams.py) in the instance; its result."""
    return json.loads(host.check_output("/usr/local/bin/streams.py" + " %s" * (1 + len(args)), mode, *args))


def start_stream(host, name, mode, *args):
    """streams.py in the background (a transient unit, stopped after 5 minutes at the
    latest); stream_result() waits for its result."""
    out = f"/tmp/streams-{name}.json"
    host.run("rm -f %s", out)
    host.run_expect([0], "systemd-run --unit streams-%s --property RuntimeMaxSec=300 /usr/local/bin/streams.py"
                    + " %s" * (1 + len(args)) + " --out %s", name, mode, *args, out)
    return out


def stream_result(host, name, timeout):
    out = f"/tmp/streams-{name}.json"
    wait_until(lambda: host.file(out).exists, timeout=timeout)
    return json.loads(host.file(out).content_string)


def stream_running(host, name):
    return not host.file(f"/tmp/streams-{name}.json").exists
