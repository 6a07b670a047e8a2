"""A deploy or rollback of one app (flaskapp_deploy_app) touches that app only: the
other keeps its process and release, even when its source on the controller has
changed meanwhile (nothing unreviewed ships in the middle of an incident)."""

import json
import os
import shutil

import pytest
import yaml
from conftest import serving
from testlib import app_state, main_pid, run_playbook, slot_unit

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]


def snapshot(host, app):
    return app_state(host, app)["current"], main_pid(host, f"{slot_unit(host, app)}.service")


@pytest.fixture
def hello_changed_on_the_controller(tmp_path):
    """The scenario's variables, with hello's source changed (an extra-vars file)."""
    group_vars = os.path.join(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "group_vars", "webservers")
    with open(group_vars) as f:
        variables = yaml.safe_load(f)
    changed = tmp_path / "hello"
    shutil.copytree(os.path.join(PROJECT, "app"), changed, ignore=shutil.ignore_patterns("__pycache__"))
    (changed / "VERSION").write_text("unreviewed\n")
    for app in variables["flaskapp_apps"]:
        if app["name"] == "hello":
            app["src"] = str(changed)
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(variables))
    return f"@{path}"


def test_deploy_and_rollback_of_one_app_leave_the_other_alone(host, tmp_path, hello_changed_on_the_controller):
    hello = snapshot(host, "hello")
    greeter_first = app_state(host, "greeter")["current"]
    source = tmp_path / "greeter"
    shutil.copytree(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "files", "greeter"), source)
    (source / "CHANGES").write_text("a new greeter\n")
    deployed = run_playbook(host, "../../playbooks/deploy.yml", "-e", "flaskapp_deploy_app=greeter",
                            "-e", f"flaskapp_src={source}", "-e", hello_changed_on_the_controller)
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    assert app_state(host, "greeter")["current"] != greeter_first
    assert snapshot(host, "hello") == hello
    rolled_back = run_playbook(host, "../../playbooks/rollback.yml", "-e", "flaskapp_deploy_app=greeter",
                               "-e", hello_changed_on_the_controller)
    assert rolled_back.returncode == 0, rolled_back.stdout[-3000:]
    assert app_state(host, "greeter")["current"] == greeter_first
    # hello was not even looked at: same release, same process, no task ran for it.
    assert snapshot(host, "hello") == hello
    assert ": hello" not in rolled_back.stdout and ": hello" not in deployed.stdout
    assert serving(host)
