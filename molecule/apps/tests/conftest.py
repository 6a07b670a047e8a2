"""The apps scenario's tests: helpers beside testlib's, the scenario's
apps as molecule.yml defines them, and requests to them through Nginx."""

import json
import os
import shlex

import yaml
from testlib import http, run_playbook

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SCENARIO = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
SECRET_1 = "apps-scenario-secret-1"


def scenario_apps():
    """flaskapp_apps as molecule.yml gives them to the instances."""
    with open(os.path.join(SCENARIO, "molecule.yml")) as f:
        # As Molecule reads it: $NAME is expanded, $$ is a $.
        config = yaml.safe_load(os.path.expandvars(f.read()).replace("$$", "$"))
    return config["provisioner"]["inventory"]["group_vars"]["webservers"]["flaskapp_apps"]


def app_url(host, name, path, *curl_args):
    """A request to an app through Nginx (HTTPS, the app's host name)."""
    return http(host, f"https://{name}.test{path}", "--resolve", f"{name}.test:443:127.0.0.1", *curl_args)


def flaskr(host, path, *curl_args):
    """A request to flaskr through Nginx with the test's cookie jar."""
    return app_url(host, "flaskr", path, "-b", "/tmp/flaskr.cookies", "-c", "/tmp/flaskr.cookies", *curl_args)


def login(host, username="alice", password="wonderland"):
    host.run("rm -f /tmp/flaskr.cookies")
    return flaskr(host, "/auth/login", "--data-urlencode", f"username={username}",
                  "--data-urlencode", f"password={password}")


def session_cookie(host):
    for line in host.file("/tmp/flaskr.cookies").content_string.splitlines():
        fields = line.split("\t")
        if len(fields) == 7 and fields[5] == "session":
            return fields[6]
    return ""


def posts(host):
    response = flaskr(host, "/")
    assert response.status == 200, response.body
    return [(p["username"], p["title"]) for p in response.json()]


def as_app(host, app, command):
    """Run a shell command as the app runs (<app>-run)."""
    return host.run("%s-run sh -c %s", app, command)


def site(host, tmp_path, apps, *extra):
    """Run site.yml on this instance with these apps."""
    path = tmp_path / f"apps-{host.backend.host}.json"
    path.write_text(json.dumps({"flaskapp_apps": apps}))
    return run_playbook(host, os.path.join(PROJECT, "site.yml"), "-e", f"@{path}", *extra)


def recap(result, host):
    """The PLAY RECAP counters of a host, e.g. {'ok': 10, 'changed': 0, ...}."""
    for line in result.stdout.splitlines():
        if line.startswith(host.backend.host) and "changed=" in line:
            return {k: int(v) for k, v in (w.split("=") for w in line.split()[2:])}
    return {}


def quote(text):
    return shlex.quote(text)
