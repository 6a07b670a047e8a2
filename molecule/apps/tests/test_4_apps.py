"""Apps removed, renamed and reordered converge: a new instance file goes live through
the idle slot; 'gone' is renamed 'renamed' (its units, sockets, links, settings, user
and gone-run go, its data stays), waiter moves first (Nginx's default server moves
with it), and the next run changes nothing."""

import copy

import pytest
from conftest import app_url, login, recap, scenario_apps, site
from testlib import app_state, flask_session_key

SECRET_2 = "apps-scenario-secret-2"


@pytest.fixture(scope="module")
def new_apps():
    apps = {app["name"]: app for app in copy.deepcopy(scenario_apps())}
    apps["flaskr"]["instance_files"] = {"config.py": f'SECRET_KEY = "{SECRET_2}"\n'}
    renamed = dict(apps.pop("gone"), name="renamed", server_names=["renamed.test"])
    return [apps["waiter"], renamed, apps["flaskr"]]


def test_removed_renamed_and_reordered_apps_converge(host, new_apps, tmp_path):
    flaskr_before = app_state(host, "flaskr")["serving_slot"]
    assert app_url(host, "gone", "/healthz").status == 200
    result = site(host, tmp_path, new_apps)
    failed = result.stdout[-4000:]
    # What flaskapp did, whatever happened after it.
    assert app_state(host, "renamed")["serving_slot"] != "", failed
    for unit in host.check_output("systemctl list-units --all --plain --no-legend 'gone-*'").splitlines():
        pytest.fail(f"unit left: {unit}")
    assert host.check_output("ls /etc/systemd/system | grep -c '^gone-' || true") == "0"
    for path in ("/srv/gone", "/etc/flaskapp/gone", "/usr/local/bin/gone-run", "/run/gone-blue.sock",
                 "/run/gone-green.sock"):
        assert not host.file(path).exists, path
    assert not host.user("gone").exists
    # Its data stays (flaskapp_purge_removed_apps is false).
    assert host.file("/var/lib/gone").is_directory
    # The new instance file went live through the idle slot.
    state = app_state(host, "flaskr")
    assert state["serving_slot"] != flaskr_before
    assert login(host).status == 302
    cookie = host.check_output("awk '$6 == \"session\" {print $7}' /tmp/flaskr.cookies")
    python = f"/srv/flaskr/releases/{state['current']}/venv/bin/python"
    assert flask_session_key(host, python, cookie, ["dev", "apps-scenario-secret-1", SECRET_2]) == SECRET_2
    # The whole play (Nginx's part included) succeeded.
    assert result.returncode == 0, failed
    assert app_url(host, "renamed", "/healthz").status == 200
    assert app_url(host, "gone", "/healthz").status != 200


def test_the_next_run_changes_nothing(host, new_apps, tmp_path):
    result = site(host, tmp_path, new_apps)
    assert result.returncode == 0, result.stdout[-4000:]
    assert recap(result, host).get("changed") == 0, result.stdout[-4000:]
