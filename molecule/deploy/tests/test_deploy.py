"""Zero-downtime deploys: three phases, each under load, with 0 errors allowed.

1. deploy a changed release; 2. deploy a broken release (it raises at import):
the play fails and the previous release keeps serving; 3. roll back to the release
before. The load generator runs inside the instance against Nginx for the whole
of each phase. The figures go to deploy-report.json in Molecule's scratch dir.
"""

import json
import os
import shutil
import time

import pytest
from conftest import http, run_playbook, wait_until

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
REPORT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "deploy-report.json")
MIN_REQUESTS = 2000


def serving_release(host):
    return http(host, "https://127.0.0.1/healthz").json()["release"]


def under_load(host, phase, playbook, *extra):
    """Run a playbook while the load generator runs; return (play result, load figures)."""
    out, stop = f"/tmp/load-{phase}.json", f"/tmp/load-{phase}.stop"
    host.run("rm -f %s %s", out, stop)
    host.run_expect([0], "systemd-run --unit loadgen-%s --property RuntimeMaxSec=300 "
                         "/usr/local/bin/loadgen.py --seconds 240 --stop-file %s --out %s", phase, stop, out)
    time.sleep(3)  # load before the deploy starts
    started = time.monotonic()
    result = run_playbook(host, os.path.join(PROJECT, "playbooks", playbook), *extra)
    took = time.monotonic() - started
    time.sleep(3)  # and after it ends
    host.run_expect([0], "touch %s", stop)
    wait_until(lambda: host.file(out).exists, timeout=60)
    load = json.loads(host.file(out).content_string)
    load["play_seconds"] = round(took, 1)
    record(host, phase, load)
    return result, load


def record(host, phase, load):
    report = json.load(open(REPORT)) if os.path.exists(REPORT) else {}
    report.setdefault(host.backend.host, {})[phase] = load
    with open(REPORT, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\n{host.backend.host} {phase}: {json.dumps(load)}")


def assert_no_failures(load):
    assert load["errors"] == 0, load
    assert load["non_2xx"] == 0, load
    assert load["requests"] >= MIN_REQUESTS, load


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A changed copy of app/ and a broken one."""
    base = tmp_path_factory.mktemp("releases")
    changed, broken = base / "changed", base / "broken"
    for path in (changed, broken):
        shutil.copytree(os.path.join(PROJECT, "app"), path, ignore=shutil.ignore_patterns("__pycache__"))
    (changed / "VERSION").write_text("2\n")
    with open(broken / "hello.py", "a") as f:
        f.write('\nraise RuntimeError("this release is broken")\n')
    return {"changed": str(changed), "broken": str(broken)}


@pytest.fixture(scope="module")
def first_release(host):
    return serving_release(host)


def test_deploy_of_a_changed_release_drops_nothing(host, sources, first_release):
    result, load = under_load(host, "deploy", "deploy.yml", "-e", f"flaskapp_src={sources['changed']}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert_no_failures(load)
    new = serving_release(host)
    assert new != first_release
    # Both releases served during the phase, and the new one is in `current`.
    assert set(load["releases"]) == {first_release, new}, load
    assert host.file("/srv/hello/current").linked_to.endswith(new)


def test_broken_release_never_takes_traffic(host, sources, first_release):
    before = serving_release(host)
    result, load = under_load(host, "broken", "deploy.yml", "-e", f"flaskapp_src={sources['broken']}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "failed its trial" in output and "this release is broken" in output, output[-3000:]
    assert_no_failures(load)
    # Only the previous release answered, and it still does.
    assert set(load["releases"]) == {before}, load
    assert serving_release(host) == before
    # The broken release was cleaned up.
    releases = host.check_output("ls /srv/hello/releases").split()
    assert len(releases) == 2 and before in releases and first_release in releases


def test_rollback_returns_to_the_previous_release(host, first_release):
    before = serving_release(host)
    result, load = under_load(host, "rollback", "rollback.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert_no_failures(load)
    assert serving_release(host) == first_release
    assert set(load["releases"]) == {before, first_release}, load
    # releases.log says what served when: converge, deploy, rollback.
    history = host.file("/srv/hello/releases.log").content_string.split()[1::2]
    assert history == [first_release, before, first_release]


def test_deploying_the_serving_source_again_changes_nothing(host, first_release):
    # app/ is what serves after the rollback: deploying it again is a no-op.
    result = run_playbook(host, os.path.join(PROJECT, "playbooks", "deploy.yml"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "changed=0" in result.stdout
    assert serving_release(host) == first_release
