"""The cluster scenario's tests run from the load balancer (testinfra_hosts in each
file) and reach the other instances by name; playbooks run against the whole cluster
while the load generator on the load balancer sends traffic through it."""

import os
import shutil
import time

import pytest
import testinfra
from testlib import Load, http, run_playbook

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
LB, APPS, DB = "cluster-lb", ["cluster-app1", "cluster-app2"], "cluster-db"
# Through the load balancer: its TLS name and address (hello.test is 127.0.0.1 on it).
URL = "https://hello.test"
# Load: 100 requests/s through the balancer, every 5th a POST that writes a note
# (its id unique), and two 5-second requests always in flight.
RATE = 100
# No request may wait this long during a rolling deploy or a rollback: it catches a
# freeze (a deploy that restarts the app made every client wait 9.7 s). Four instances
# and the playbook share 2 cores here, with another scenario beside them in `make
# test`: the worst wait was 387 to 608 ms alone, 1,988 to 2,943 ms with two other
# scenarios, hence the margin.
WORST_MS = 5000


def instance(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@pytest.fixture(scope="session")
def apps():
    return [instance(name) for name in APPS]


@pytest.fixture(scope="session")
def db():
    return instance(DB)


def release_on(app_host):
    """The release an app host serves, asked directly (its own Nginx, not the balancer)."""
    return http(app_host, "http://127.0.0.1/healthz", "-H", "Host: hello.test").json()["release"]


def notes_in_database(db_host):
    """The ids of every note in PostgreSQL."""
    out = db_host.check_output("sudo -u postgres psql -d hello -Atc 'SELECT id FROM notes'")
    return set(out.split())


def under_load(lb, phase, action, *, seconds=240):
    """Run action() while the load generator sends GETs and note-writing POSTs through
    the balancer; return (action's result, the load figures, the acknowledged note ids)."""
    acked = f"/tmp/acked-{phase}.txt"
    with Load(lb, phase, rate=RATE, seconds=seconds, host="hello.test", host_header="hello.test",
              post_every=5, post_path="/notes", id_prefix=phase, acked=acked) as load:
        started = time.monotonic()
        result = action()
        took = time.monotonic() - started
    figures = load.record(action_seconds=round(took, 1))
    return result, figures, set(lb.file(acked).content_string.split())


def cluster_playbook(lb, name, *extra):
    """A playbook of playbooks/ against the whole cluster."""
    return run_playbook(lb, os.path.join(PROJECT, "playbooks", name), *extra, limit="all")


def copy_app(base, name, change):
    """A copy of app/ with change(path) applied."""
    path = base / name
    shutil.copytree(os.path.join(PROJECT, "app"), path, ignore=shutil.ignore_patterns("__pycache__"))
    change(path)
    return str(path)
