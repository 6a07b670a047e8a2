"""Wrong types, generated from each role's meta/argument_specs.yml, so a new variable
is covered the day it is added: every variable and every key of an app or vhost entry
gets a list where a string belongs, a number where a list belongs, a string where a
boolean belongs, and so on. Each must fail at the first check, before any change,
and the message must name it.

The roles check types all at once and name every wrong variable, so one run per role
and kind of wrong value covers them all (the hand-written cases in test_2_bad_inputs
prove, one at a time, that a failing check leaves the host as it was)."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from testlib import run_playbook

# rel-collection is test_4_collection's own host.
testinfra_hosts = ["ansible://rel-debian13"]

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SITE = os.path.join(PROJECT, "site.yml")
APP = {"name": "hello", "src": os.path.join(PROJECT, "app"), "entrypoint": "hello:app"}
VHOST = {"name": "hello", "socket": "/srv/hello/app.sock"}
CHECK_TASK = "Check every variable against meta/argument_specs.yml, as the role will read it"

# Three wrong values of each type, one per run: run k gives every variable the k-th.
WRONG = {
    "str": [["a", "list"], {"a": "mapping"}, True],
    "int": [[8], {"a": 1}, "many"],
    "bool": ["false", 1, [True]],
    "list": [42, {"a": 1}, "a,b"],
    "dict": [["a"], "a=b", 42],
}
WRONG["path"] = WRONG["str"]
# A wrong element for each element type of a list.
WRONG_ELEMENT = {"str": ["nested"], "int": "eighty", "dict": "a string"}


def options(role):
    with open(os.path.join(PROJECT, "roles", role, "meta", "argument_specs.yml")) as f:
        return yaml.safe_load(f)["argument_specs"]["main"]["options"]


def wrong_values(spec_options, kind):
    """Every option given the kind-th wrong value of its type: {name: value}."""
    return {name: WRONG[spec["type"]][kind] for name, spec in spec_options.items() if spec["type"] in WRONG}


def wrong_elements(spec_options):
    """Every list option given one wrong element."""
    return {name: [WRONG_ELEMENT[spec["elements"]]] for name, spec in spec_options.items()
            if spec["type"] == "list" and spec.get("elements") in WRONG_ELEMENT}


def runs():
    """(run id, extra vars, the names the message must give)."""
    for role, entries, entry_var, entry in (("firewall", None, None, None),
                                            ("flaskapp", "flaskapp_apps", "flaskapp_apps", APP),
                                            ("nginx", "nginx_vhosts", "nginx_vhosts", VHOST)):
        spec = options(role)
        for kind in range(3):
            top = wrong_values(spec, kind)
            # The app or vhost list stays valid here: its keys get their own runs.
            top.pop(entries, None)
            yield f"{role}-{kind}", top, list(top)
            if entries:
                keys = wrong_values(spec[entries]["options"], kind)
                yield (f"{entries}-keys-{kind}", {entry_var: [dict(entry, **keys)]},
                       [f"{entries}[0].{key}" for key in keys])
        elements = wrong_elements(spec)
        yield f"{role}-elements", elements, [f"{name}[0]" for name in elements]
        if entries:
            elements = wrong_elements(spec[entries]["options"])
            yield (f"{entries}-elements", {entry_var: [dict(entry, **elements)]},
                   [f"{entries}[0].{key}[0]" for key in elements])


RUNS = {run_id: (extra, names) for run_id, extra, names in runs()}


@pytest.fixture(scope="module")
def outcomes(host, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("wrong-types")

    def attempt(run_id):
        extra_file = scratch / f"{run_id}.json"
        extra_file.write_text(json.dumps(RUNS[run_id][0]))
        result = run_playbook(host, SITE, "-e", f"@{extra_file}")
        # Messages may be folded over lines: compare with single spaces.
        return run_id, (result.returncode, " ".join((result.stdout + result.stderr).split()))

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(pool.map(attempt, RUNS))


@pytest.mark.parametrize("run_id", list(RUNS))
def test_every_wrong_type_fails_at_the_check_naming_the_variable(run_id, outcomes):
    returncode, output = outcomes[run_id]
    assert returncode != 0, output[-3000:]
    assert "changed=0" in output, output[-3000:]
    # The run stopped at the role's first check (role : task name).
    failed_task = output.rsplit("TASK [", 1)[1].split("]")[0]
    assert failed_task.endswith(f": {CHECK_TASK}"), output[-3000:]
    missing = [name for name in RUNS[run_id][1] if f"{name}: must be" not in output]
    assert missing == [], output[-3000:]


def test_every_variable_of_every_role_is_covered():
    covered = {name.split("[")[0].split(".")[0] for _, names in RUNS.values() for name in names}
    for role in ("firewall", "flaskapp", "nginx"):
        assert set(options(role)) <= covered, role
    # The keys of app and vhost entries too.
    for role, entries in (("flaskapp", "flaskapp_apps"), ("nginx", "nginx_vhosts")):
        keys = {name.split(".")[1].split("[")[0] for _, names in RUNS.values() for name in names
                if name.startswith(f"{entries}[0].")}
        assert set(options(role)[entries]["options"]) <= keys, entries
