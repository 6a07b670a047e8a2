"""The switch: new releases, a broken one and a rollback under load, with nothing a
user would notice: no failed GET or POST, no request waiting 1 s or more, every
5-second request finished. The figures go to load-<instance>.json in Molecule's
scratch directory."""

import calendar
import time

import pytest
from conftest import (GRACEFUL_TIMEOUT, assert_unnoticed, playbook, serving_release, start_stream, stream_result,
                      stream_running, under_load)
from testlib import app_state, http, run_playbook, wait_until


@pytest.fixture(scope="module")
def first_release(host):
    return serving_release(host)


def switched_at(host):
    """When the last switch happened (releases.log, whole seconds), as a Unix time."""
    line = host.file("/srv/hello/releases.log").content_string.splitlines()[-1]
    return calendar.timegm(time.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%SZ"))


def test_deploy_at_a_high_rate_is_unnoticed(host, sources, first_release):
    old_slot = app_state(host, "hello")["serving_slot"]
    # A WebSocket and an event stream, a message a second, open across the deploy.
    start_stream(host, "deploy-ws", "ws", "--interval", "1", "--seconds", "150")
    start_stream(host, "deploy-sse", "sse", "--path", "/events?count=150&ms=1000", "--seconds", "160")
    result, load = under_load(host, "deploy-high", playbook("deploy.yml"), "-e", f"flaskapp_src={sources['v2']}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    # The switch did not wait for them: the deploy is over and they are still open.
    assert stream_running(host, "deploy-ws") and stream_running(host, "deploy-sse")
    assert_unnoticed(load, minimum=2000)
    new = serving_release(host)
    assert new != first_release
    # Both releases served during the phase; the new one from the other slot.
    assert set(load["releases"]) == {first_release, new}, load
    state = app_state(host, "hello")
    assert state["current"] == new and state["serving_slot"] != old_slot
    # The open connections stay with the old slot, messages flowing past the switch,
    # until its graceful stop ends them: graceful_timeout after the switch at the latest.
    switch = switched_at(host)
    ws = stream_result(host, "deploy-ws", timeout=GRACEFUL_TIMEOUT + 20)
    sse = stream_result(host, "deploy-sse", timeout=20)
    print(f"\n{host.backend.host} streams across the deploy: WebSocket {ws['echoed']} echoes, ended {ws['ended']} "
          f"{ws['ended_at'] - switch:.1f} s after the switch; events {len(sse['events'])}, ended {sse['ended']} "
          f"{sse['ended_at'] - switch:.1f} s after it")
    # Every message echoed, but the one in flight when the connection was cut, if any.
    assert ws["status"] == 101 and ws["sent"] - 1 <= ws["echoed"] <= ws["sent"], ws
    assert ws["mismatched"] == 0 and ws["last_echo_at"] > switch + 5, ws
    assert sse["status"] == 200 and {e["release"] for e in sse["events"]} == {first_release}, sse
    assert sse["last_event_at"] > switch + 5 and len(sse["events"]) < 150, sse
    for conn in (ws, sse):
        assert conn["ended"] == "eof" or conn["ended"].startswith("closed by the server"), conn
        assert conn["ended_at"] < switch + 1 + GRACEFUL_TIMEOUT + 5, conn
    # The old slot stops once its in-flight requests are done, and stays off at boot.
    wait_until(lambda: host.run("systemctl is-active hello-%s.service", old_slot).stdout.strip() != "active",
               timeout=40)
    assert host.run("systemctl is-enabled hello-%s.service", old_slot).stdout.strip() != "enabled"


def test_a_page_of_the_previous_release_still_gets_its_static_files(host):
    # v2 renamed style.css to style.v2.css: new pages ask for the new name, and a page
    # that the old release rendered just before the switch still gets the old file.
    new = http(host, "https://127.0.0.1/static/style.v2.css")
    old = http(host, "https://127.0.0.1/static/style.css")
    assert new.status == 200 and old.status == 200
    assert "font-family" in old.body
    assert old.headers["cache-control"] == "no-cache"
    assert http(host, "https://127.0.0.1/static/no-such-file.css").status == 404


def test_deploy_at_a_low_rate_is_unnoticed(host, sources):
    before = serving_release(host)
    result, load = under_load(host, "deploy-low", playbook("deploy.yml"), "-e", f"flaskapp_src={sources['v3']}",
                              rate="low")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert_unnoticed(load, minimum=200)
    assert set(load["releases"]) == {before, serving_release(host)}, load


def test_broken_release_never_takes_traffic(host, sources, first_release):
    before = serving_release(host)
    releases_before = app_state(host, "hello")["releases"]
    result, load = under_load(host, "broken", playbook("deploy.yml"), "-e", f"flaskapp_src={sources['broken']}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Its release command (migrations) already fails to import it: nothing switched.
    assert "failed its trial" in output and "this release is broken" in output, output[-3000:]
    assert_unnoticed(load, minimum=2000)
    # Only the serving release answered, and it still does.
    assert set(load["releases"]) == {before}, load
    assert serving_release(host) == before
    # The broken release was cleaned up.
    assert app_state(host, "hello")["releases"] == releases_before


def test_rollback_is_unnoticed(host, first_release):
    before = serving_release(host)
    history = app_state(host, "hello")["history"]
    result, load = under_load(host, "rollback", playbook("rollback.yml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert_unnoticed(load, minimum=2000)
    back = serving_release(host)
    # Back to the release that served before the current one, from releases.log.
    assert back == history[-2] and back != before
    assert set(load["releases"]) == {before, back}, load
    assert app_state(host, "hello")["history"] == history + [back]


def test_deploying_the_serving_source_again_changes_nothing(host, sources):
    # After the rollback, v2 serves again: deploying it is a no-op.
    assert serving_release(host) == app_state(host, "hello")["history"][1]
    result = run_playbook(host, playbook("deploy.yml"), "-e", f"flaskapp_src={sources['v2']}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "changed=0" in result.stdout
