"""Test helpers shared by the Molecule scenarios: HTTP from inside an instance,
units, waiting, a load generator around an action, and running this project's
playbooks against an instance.

It is also a pytest plugin (the shared Molecule config loads it with `-p testlib`):
it tells pytest-xdist to keep each instance's tests together, so they run in file
order on one worker while the other instance's run beside them.
"""

import json
import os
import shlex
import subprocess
import time

import pytest


def pytest_xdist_make_scheduler(config, log):
    """With --dist loadscope, the scope of a test is its instance (not its file): each
    instance's tests run in file order on one worker, the instances side by side."""
    inventory = config.getoption("ansible_inventory", None)
    if config.getvalue("dist") != "loadscope" or not inventory:
        return None
    from testinfra.utils.ansible_runner import AnsibleRunner
    from xdist.scheduler import LoadScopeScheduling

    # Longest first: an instance name may begin with another's.
    ids = sorted((f"ansible://{name}" for name in AnsibleRunner(inventory).get_hosts("all")), key=len, reverse=True)

    class ByInstance(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            # testinfra's instance id comes first in the test's parameters.
            params = nodeid.partition("[")[2]
            for instance in ids:
                if params.startswith(instance) and params[len(instance):len(instance) + 1] in ("]", "-"):
                    return instance
            return super()._split_scope(nodeid)

    return ByInstance(config, log)


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def http(host, url, *curl_args, user=None):
    """GET url with curl inside the instance, optionally as another user."""
    # Body and status on stdout; the response headers as JSON on stderr.
    # -k: the instances use self-signed certificates.
    argv = ["curl", "-sS", "-k", "-m", "10", "-w", "\n%{http_code}%{stderr}%{header_json}", *curl_args, url]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    result = host.run(shlex.join(argv))
    if result.rc != 0:
        return Response(0, {}, result.stderr)
    body, _, status = result.stdout.rpartition("\n")
    headers = {name: ", ".join(values) for name, values in json.loads(result.stderr).items()}
    return Response(int(status), headers, body)


def connect_as(host, user, socket_path):
    """Connect to a unix socket as user; return the error name, or "" when allowed."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    return host.check_output("runuser -u %s -- python3 -c %s %s", user, code, socket_path)


def wait_until(check, timeout=30, interval=0.5):
    """Poll check() until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout}s waiting for {check.__doc__ or check}")
        time.sleep(interval)


def main_pid(host, unit):
    return int(host.check_output("systemctl show --property MainPID --value %s", unit))


def app_state(host, app):
    """What `flaskapp-slot status` says of the app: serving slot, releases, history."""
    return json.loads(host.check_output("/usr/local/sbin/flaskapp-slot status %s", app))


def slot_unit(host, app):
    """The units' name of the app's serving slot, e.g. hello-blue (.service, .socket)."""
    return f"{app}-{app_state(host, app)['serving_slot']}"


class Load:
    """The load generator (molecule/common/loadgen.py, installed in the instance by
    prepare.yml) running for the duration of a with-block. Afterwards, .figures holds
    its results; they are printed and kept in Molecule's scratch directory
    (load-<instance>.json, by name)."""

    def __init__(self, instance, name, *, rate=300, threads=8, seconds=240, settle=3, **options):
        """instance: the testinfra host it runs on; options: more of loadgen.py's
        options, e.g. post_path="/notes" for --post-path, host="hello.test" for --host."""
        self.host, self.name, self.settle = instance, name, settle
        self.out, self.stop = f"/tmp/load-{name}.json", f"/tmp/load-{name}.stop"
        self.argv = ["--rate", str(rate), "--threads", str(threads), "--seconds", str(seconds)]
        self.argv += [arg for key, value in options.items() for arg in ("--" + key.replace("_", "-"), str(value))]
        self.figures = {}

    def __enter__(self):
        self.host.run("rm -f %s %s", self.out, self.stop)
        # RuntimeMaxSec: systemd stops it even if the test dies first.
        command = ["systemd-run", "--unit", f"loadgen-{self.name}", "--property", "RuntimeMaxSec=300",
                   "/usr/local/bin/loadgen.py", *self.argv, "--stop-file", self.stop, "--out", self.out]
        self.host.run_expect([0], shlex.join(command))
        time.sleep(self.settle)  # load before the action starts
        return self

    def __exit__(self, *exc):
        time.sleep(self.settle)  # and after it ends
        self.host.run("touch %s", self.stop)
        wait_until(lambda: self.host.file(self.out).exists, timeout=60)
        self.figures.update(json.loads(self.host.file(self.out).content_string))

    def record(self, **more):
        """Add figures (e.g. how long the action took), print and keep them all."""
        self.figures.update(more)
        instance = self.host.backend.host
        report = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], f"load-{instance}.json")
        kept = json.load(open(report)) if os.path.exists(report) else {}
        kept[self.name] = self.figures
        with open(report, "w") as f:
            json.dump(kept, f, indent=2)
        print(f"\n{instance} {self.name}: {json.dumps(self.figures)}")
        return self.figures


def run_playbook(host, playbook, *extra, limit=None):
    """Run a playbook (a path relative to the scenario) against this instance only,
    or against the hosts in limit."""
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(project, "ansible.cfg"),
               ANSIBLE_ROLES_PATH=os.path.join(project, "roles"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    # The inventory directory: Molecule's generated file, and the groups a scenario adds
    # (provisioner.inventory.hosts, in a file of its own beside it).
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, "--limit", limit or host.backend.host,
         os.path.join(scenario, playbook), *extra],
        capture_output=True, text=True, env=env, timeout=600,
    )


def flask_session_key(host, python, cookie, keys):
    """Which of keys signed Flask's session cookie (checked with the app's own Flask,
    the python of its virtualenv); "" for none."""
    code = (
        "import sys, flask\n"
        "for key in sys.argv[2:]:\n"
        "    app = flask.Flask('check'); app.secret_key = key\n"
        "    try:\n"
        "        app.session_interface.get_signing_serializer(app).loads(sys.argv[1]); print(key); break\n"
        "    except Exception:\n"
        "        pass\n"
    )
    argv = [python, "-c", code, cookie, *keys]
    return host.check_output(" ".join(["%s"] * len(argv)), *argv).strip()
