"""A release that fails its trial on the first app host, during a rolling deploy under
load: the rollout stops there and says why, no request fails, the balancer never sends
the failed release a request (the host stays out of its pool), and the second host
still serves the old release, untouched. A rollback then takes every host back to
the release before, one at a time, under load, and puts the first host back."""

from conftest import LB, WORST_MS, cluster_playbook, copy_app, notes_in_database, release_on, under_load
from testlib import http

testinfra_hosts = [f"ansible://{LB}"]


def broken(path):
    """A release whose health check fails: it starts, but never answers 200."""
    source = (path / "hello.py").read_text()
    (path / "hello.py").write_text(source.replace('return jsonify(status="ok"', 'return jsonify(status="broken"), 500\n'
                                                  '        return jsonify(status="ok"'))


def test_failed_release_stops_the_rollout(host, apps, db, tmp_path):
    first, second = apps
    old = release_on(first)
    assert release_on(second) == old
    source = copy_app(tmp_path, "broken", broken)
    installed = second.check_output("ls /srv/hello/releases")

    result, load, acked = under_load(host, "failed-release", lambda: cluster_playbook(
        host, "deploy.yml", "-e", f"flaskapp_src={source}"), seconds=180)
    after = {"first": release_on(first), "second": release_on(second),
             "installed": second.check_output("ls /srv/hello/releases"),
             "drained": host.check_output("grep -l '^server .* down;' /etc/nginx/pools/hello/*.conf || true").split()}
    # A rollback, under load too: every host goes back to the release before, one at a
    # time, and the first host comes back into the pool.
    again, back, back_acked = under_load(host, "rollback", lambda: cluster_playbook(host, "rollback.yml"))

    # The play failed on the first host, with the reason.
    assert result.returncode != 0
    assert "cluster-app1" in result.stdout and "failed its trial" in result.stdout, result.stdout[-3000:]
    # Nothing failed for clients, and every request got the old release.
    assert load["errors"] == 0 and load["non_2xx"] == 0 and load["max_ms"] < WORST_MS, load
    assert set(load["releases"]) - {"?"} == {old}, load  # "?": the POSTs' answers
    assert not acked - notes_in_database(db)
    # The second host was never touched (same release, no trial); the first is out of
    # the pool, its old release still running.
    assert after["first"] == old and after["second"] == old, after
    assert after["installed"] == installed, after
    assert [name.rsplit("/", 1)[1] for name in after["drained"]] == ["cluster-app1.conf"], after

    assert again.returncode == 0, again.stdout[-3000:]
    assert back["errors"] == 0 and back["non_2xx"] == 0 and back["max_ms"] < WORST_MS, back
    assert not back_acked - notes_in_database(db)
    assert host.check_output("grep -l '^server .* down;' /etc/nginx/pools/hello/*.conf || true") == ""
    before = {release_on(first), release_on(second)}
    assert len(before) == 1 and before != {old}, before
    answered = {http(host, "https://hello.test/healthz").json()["release"] for _ in range(10)}
    assert answered == before
