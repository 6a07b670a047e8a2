"""Flask's tutorial app (flaskr), deployed with role variables only: the database is
created once (the release command skips an existing one), data written through Nginx
survives a deploy (whose source holds a developer's instance folder, .env and
virtualenvs, none of which ships) and a rollback; the instance config's SECRET_KEY
signs the sessions, not the tutorial's 'dev'."""

import os
import shutil

import pytest
from conftest import PROJECT, SCENARIO, SECRET_1, flaskr, login, posts, session_cookie
from testlib import app_state, flask_session_key, run_playbook

PLAYBOOKS = os.path.join(PROJECT, "playbooks")
JUNK = {
    "instance/flaskr.sqlite": "a developer's database",
    "instance/config.py": "SECRET_KEY = 'dev-machine'\n",
    ".env": "SECRET_KEY=from-dotenv\n",
    ".env.local": "TOKEN=local\n",
    "venv/bin/python": "#!/bin/false\n",
    ".venv/pyvenv.cfg": "home = /nowhere\n",
    ".git/config": "[core]\n",
    "__pycache__/x.cpython-311.pyc": "",
    "flaskr/__pycache__/db.cpython-311.pyc": "",
}


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    """flaskr version 2, in a developer's working copy: with everything that must not ship."""
    path = tmp_path_factory.mktemp("flaskr") / "flaskr"
    shutil.copytree(os.path.join(SCENARIO, "files", "flaskr"), path)
    (path / "VERSION").write_text("2\n")
    for name, content in JUNK.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)
    return str(path)


def python(release):
    return f"/srv/flaskr/releases/{release}/venv/bin/python"


def test_data_written_through_nginx_is_kept(host):
    register = flaskr(host, "/auth/register", "--data-urlencode", "username=alice",
                      "--data-urlencode", "password=wonderland")
    # 302 the first time; 409 if an earlier run of the tests registered alice.
    assert register.status in (302, 409), register.body
    assert login(host).status == 302
    if ("alice", "first post") not in posts(host):
        assert flaskr(host, "/create", "-d", "title=first post", "-d", "body=hello").status == 302
    assert ("alice", "first post") in posts(host)


def test_the_instance_config_secret_key_signs_sessions(host):
    assert login(host).status == 302
    release = app_state(host, "flaskr")["current"]
    assert flask_session_key(host, python(release), session_cookie(host), ["dev", SECRET_1]) == SECRET_1


def test_a_deploy_keeps_the_data_and_ships_no_local_files(host, v2):
    before = app_state(host, "flaskr")["current"]
    result = run_playbook(host, os.path.join(PLAYBOOKS, "deploy.yml"), "-e", f"flaskapp_src={v2}",
                          "-e", "flaskapp_deploy_app=flaskr")
    assert result.returncode == 0, result.stdout[-3000:]
    release = app_state(host, "flaskr")["current"]
    assert release != before
    app = f"/srv/flaskr/releases/{release}/app"
    assert host.file(f"{app}/VERSION").content_string == "2\n"
    shipped = host.check_output("cd %s && find . -path ./instance -prune -o -print", app).split()
    for name in (".env", ".env.local", "venv", ".venv", ".git", "__pycache__", "flaskr/__pycache__"):
        assert f"./{name}" not in shipped, name
    assert host.file(f"{app}/instance").linked_to == "/var/lib/flaskr/instance"
    # The developer's database and config did not replace the server's.
    assert host.run("grep -r dev-machine /var/lib/flaskr/instance").rc != 0
    assert ("alice", "first post") in posts(host)
    assert login(host).status == 302
    assert flask_session_key(host, python(release), session_cookie(host), ["dev", "dev-machine", SECRET_1]) == SECRET_1


def test_a_rollback_keeps_the_data(host):
    before = app_state(host, "flaskr")["current"]
    result = run_playbook(host, os.path.join(PLAYBOOKS, "rollback.yml"), "-e", "flaskapp_deploy_app=flaskr")
    assert result.returncode == 0, result.stdout[-3000:]
    after = app_state(host, "flaskr")["current"]
    assert after != before
    assert host.file(f"/srv/flaskr/releases/{after}/app/VERSION").content_string == "1\n"
    assert ("alice", "first post") in posts(host)
    assert flaskr(host, "/create", "-d", "title=after rollback", "-d", "body=x", "-b", "/tmp/flaskr.cookies").status == 302
    assert ("alice", "after rollback") in posts(host)
