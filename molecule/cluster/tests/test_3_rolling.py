"""A rolling deploy through the load balancer, under GETs and note-writing POSTs, at
100 requests/s and, beside them, from one client at 2 requests/s (its kept-alive
connection sits idle between requests, when reloads close idle connections): one app
host at a time leaves the pool, switches and comes back; nothing fails, no client
waits, every acknowledged write is in PostgreSQL, both hosts end on the same release,
and the release command (migrations) ran once for the whole cluster."""

import time

from conftest import (LB, WORST_MS, cluster_playbook, copy_app, notes_in_database, release_on,
                      under_load)
from testlib import Load

testinfra_hosts = [f"ansible://{LB}"]


def task_runs(output, task):
    """(position, host) of every host a task ran on, in the order of the play's output."""
    runs = []
    for position, block in enumerate(output.split("\nTASK [")):
        if block.split("]", 1)[0].split(" : ")[-1].startswith(task):
            runs += [(position, line.split("[", 1)[1].split("]")[0].split(" ")[0])
                     for line in block.splitlines() if line.startswith(("ok: [", "changed: ["))]
    return runs


def test_rolling_deploy_loses_nothing(host, apps, db, tmp_path):
    old = {release_on(app) for app in apps}
    assert len(old) == 1, old
    source = copy_app(tmp_path, "v2", lambda path: (path / "VERSION").write_text(f"{time.time()}\n"))

    with Load(host, "rolling-slow-client", rate=2, threads=1, long=0, seconds=300, host="hello.test",
              host_header="hello.test", post_every=2, post_path="/notes", id_prefix="slow",
              acked="/tmp/acked-slow.txt") as slow_client:
        result, load, acked = under_load(host, "rolling", lambda: cluster_playbook(
            host, "deploy.yml", "-e", f"flaskapp_src={source}"))
    slow = slow_client.record()
    acked |= set(host.file("/tmp/acked-slow.txt").content_string.split())
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    # What clients saw: no failure of any kind, no request that waited.
    assert load["errors"] == 0 and load["non_2xx"] == 0, load
    assert load["max_ms"] < WORST_MS, load
    assert load["long_requests"] >= 2 and load["long_failed"] == 0, load
    assert load["requests"] >= 1000 and load["acked"] >= 200, load
    # The slow client too: a request on a connection the balancer closed while it was
    # idle is sent again once, on a new connection, as browsers do (loadgen.py).
    assert slow["errors"] == 0 and slow["non_2xx"] == 0 and slow["max_ms"] < WORST_MS, slow
    assert slow["requests"] >= 60 and slow["acked"] >= 30, slow
    # Every write the app acknowledged is in the database.
    missing = acked - notes_in_database(db)
    assert not missing, f"{len(missing)} acknowledged notes missing, e.g. {sorted(missing)[:5]}"

    # Both hosts serve the same new release, and both releases served during the rollout.
    new = {release_on(app) for app in apps}
    assert len(new) == 1 and new != old, (old, new)
    assert set(load["releases"]) - {"?"} == old | new, load  # "?": the POSTs' answers
    # One host at a time: the first host rejoined the pool before the second left it.
    mark = "Mark the backend in each pool entry, tested with nginx -t before it lands: "
    left, rejoined = task_runs(result.stdout, mark + "drained"), task_runs(result.stdout, mark + "serving")
    assert [name for _, name in left] == ["cluster-app1", "cluster-app2"], (left, rejoined)
    assert [name for _, name in rejoined] == ["cluster-app1", "cluster-app2"], (left, rejoined)
    assert left[0][0] < rejoined[0][0] < left[1][0] < rejoined[1][0], (left, rejoined)
    # The release command ran once for the new release, on the first host.
    migrations = db.check_output("sudo -u postgres psql -d hello -Atc "
                                 "\"SELECT count(*) FROM migrations WHERE release = '%s'\"" % new.pop())
    assert migrations.strip() == "1", migrations
