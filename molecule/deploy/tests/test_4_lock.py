"""One deploy at a time on a host: a second run waits for the first, or fails clearly
when it may not wait, and never deletes a release the other installs or serves."""

import os
import subprocess
import time

from conftest import copy_app, playbook, serving_release
from testlib import app_state, run_playbook, wait_until


def start_playbook(host, book, *extra):
    """ansible-playbook against this instance, in the background."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "ansible.cfg"),
               ANSIBLE_NOCOLOR="1")
    # The inventory directory, with the scenario's databases group (as run_playbook).
    return subprocess.Popen(["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]),
                             "--limit", host.backend.host, book, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def locked(host):
    """the deploy lock taken"""
    return host.run("systemctl is-active flaskapp-deploy.service").stdout.strip() == "active"


def test_a_second_deploy_that_may_not_wait_fails_clearly_and_changes_nothing(host, tmp_path):
    first = start_playbook(host, playbook("deploy.yml"), "-e",
                           f"flaskapp_src={copy_app(tmp_path, 'v5', lambda p: (p / 'VERSION').write_text('5'))}")
    wait_until(lambda: locked(host), timeout=60)
    second = run_playbook(host, playbook("deploy.yml"), "-e", "flaskapp_lock_wait=0", "-e",
                          f"flaskapp_src={copy_app(tmp_path, 'v6', lambda p: (p / 'VERSION').write_text('6'))}")
    output = second.stdout + second.stderr
    assert second.returncode != 0
    assert "Another deploy is running" in output and "flaskapp deploy lock" in output, output[-3000:]
    assert "changed=0" in second.stdout
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    # The first deploy's release serves, untouched by the second.
    assert app_state(host, "hello")["current"] == serving_release(host)
    assert not locked(host)


def test_a_second_deploy_waits_for_the_first_and_both_land(host, tmp_path):
    first = start_playbook(host, playbook("deploy.yml"), "-e",
                           f"flaskapp_src={copy_app(tmp_path, 'v7', lambda p: (p / 'VERSION').write_text('7'))}")
    wait_until(lambda: locked(host), timeout=60)
    time.sleep(1)
    second = run_playbook(host, playbook("deploy.yml"), "-e",
                          f"flaskapp_src={copy_app(tmp_path, 'v8', lambda p: (p / 'VERSION').write_text('8'))}")
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    assert second.returncode == 0, second.stdout[-3000:]
    state = app_state(host, "hello")
    # The second deploy ran after the first: both releases are in the history, in that
    # order, and the first one's release is still installed.
    v7, v8 = state["history"][-2:]
    assert state["current"] == v8 == serving_release(host)
    assert v7 in state["installed"]
