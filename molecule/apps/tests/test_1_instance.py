"""Flask's instance folder as Flask defines it (an installed package and a plain
module), instance files from role variables, per-app sandboxes, restarts without a
start limit, and a release id that covers the Python version."""

import re

import pytest
from conftest import SECRET_1, app_url, as_app
from testlib import run_playbook, slot_unit

WHERE = "import os, sys; print(app.instance_path, os.path.realpath(app.instance_path))"


def instance_path(host, app, module_code, cwd):
    """Flask's instance folder of the app, and where it really is, as the app runs."""
    out = as_app(host, app, f"cd {cwd} && python -c '{module_code}; {WHERE}'")
    assert out.rc == 0, out.stderr
    return out.stdout.split()


def test_an_installed_package_has_its_instance_folder_in_the_state_directory(host):
    # Imported from the virtualenv (not from the source beside it): Flask's
    # <venv>/var/flaskr-instance, inside the read-only release.
    path, real = instance_path(host, "flaskr", "from flaskr import create_app; app = create_app()", "/")
    assert re.fullmatch(r"/srv/flaskr/releases/[0-9a-f]{12}/venv/var/flaskr-instance", path), path
    assert real == "/var/lib/flaskr/instance"
    # Gunicorn imports it from its working directory, the source: instance/ beside it.
    path, real = instance_path(host, "flaskr", "from flaskr import create_app; app = create_app()", ".")
    assert re.fullmatch(r"/srv/flaskr/releases/[0-9a-f]{12}/app/instance", path), path
    assert real == "/var/lib/flaskr/instance"
    # The tutorial's database was created there, by the release command.
    db = host.file("/var/lib/flaskr/instance/flaskr.sqlite")
    assert db.exists and db.user == "flaskr" and db.mode & 0o077 == 0


def test_a_plain_module_has_its_instance_folder_in_the_state_directory(host):
    path, real = instance_path(host, "waiter", "from waiter import app", ".")
    assert re.fullmatch(r"/srv/waiter/releases/[0-9a-f]{12}/app/instance", path), path
    assert real == "/var/lib/waiter/instance"
    # The app writes there through Nginx, and the file is the app's.
    assert app_url(host, "waiter", "/note", "--data-binary", "kept across releases").status == 200
    assert app_url(host, "waiter", "/note").body == "kept across releases"
    note = host.file("/var/lib/waiter/instance/note.txt")
    assert note.user == "waiter" and note.content_string == "kept across releases"


def test_instance_folders_are_private_to_their_app(host):
    for app in ("flaskr", "waiter"):
        for path in (f"/var/lib/{app}", f"/var/lib/{app}/instance"):
            folder = host.file(path)
            assert (folder.user, folder.group, folder.mode) == (app, app, 0o750), path
    # Another app, or any other user, cannot look in.
    assert host.run("runuser -u waiter -- ls /var/lib/flaskr/instance").rc != 0
    assert host.run("runuser -u nobody -- cat /var/lib/waiter/instance/note.txt").rc != 0


def test_instance_files_are_root_written_and_readable_by_the_app_only(host):
    slot = slot_unit(host, "flaskr").removeprefix("flaskr-")
    config = host.file(f"/etc/flaskapp/flaskr/{slot}/instance/config.py")
    assert (config.user, config.group, config.mode) == ("root", "flaskr", 0o640)
    assert host.file(f"/etc/flaskapp/flaskr/{slot}/instance").mode == 0o750
    assert SECRET_1 in config.content_string
    # The app finds it in its instance folder, and cannot change it.
    read = as_app(host, "flaskr", 'cat "$STATE_DIRECTORY/instance/config.py"')
    assert read.rc == 0 and SECRET_1 in read.stdout
    write = as_app(host, "flaskr", 'echo "SECRET_KEY = 1" >> "$STATE_DIRECTORY/instance/config.py"')
    assert write.rc != 0
    assert as_app(host, "flaskr", 'rm -f "$STATE_DIRECTORY/instance/config.py"').rc != 0
    # Other users and other apps cannot read it.
    for user in ("nobody", "waiter"):
        assert host.run("runuser -u %s -- cat %s", user, config.path).rc != 0
    assert host.run("runuser -u waiter -- cat /var/lib/flaskr/instance/config.py").rc != 0
    # And the app uses it: create_app() loads config.py from the instance folder.
    key = as_app(host, "flaskr", "cd / && python -c 'from flaskr import create_app; print(create_app().config[\"SECRET_KEY\"])'")
    assert key.stdout.strip() == SECRET_1


def exposure(host, unit):
    out = host.check_output("systemd-analyze security --no-pager %s", unit)
    return float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))


def test_the_default_sandbox_scores_1_5_or_less(host):
    assert exposure(host, f"{slot_unit(host, 'flaskr')}.service") <= 1.5


def test_an_app_can_relax_its_own_sandbox(host):
    flaskr, waiter = slot_unit(host, "flaskr"), slot_unit(host, "waiter")
    show = "systemctl show --property ProcSubset --value %s.service"
    assert host.check_output(show, flaskr) == "pid"
    assert host.check_output(show, waiter) == "all"
    # waiter reads /proc/meminfo (as psutil does), served and as a one-off command;
    # flaskr, with the default sandbox, cannot.
    assert app_url(host, "waiter", "/meminfo").body.startswith("MemTotal:")
    assert as_app(host, "waiter", "head -1 /proc/meminfo").rc == 0
    assert as_app(host, "flaskr", "head -1 /proc/meminfo").rc != 0
    # Everything else stays as tight.
    assert exposure(host, f"{waiter}.service") <= 1.5


def test_apps_restart_forever_after_the_network_is_up(host):
    unit = f"{slot_unit(host, 'waiter')}.service"
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show --property Restart,RestartUSec,StartLimitIntervalUSec,After,Wants %s", unit).splitlines())
    assert props["Restart"] == "always"
    assert props["RestartUSec"] == "2s"
    assert props["StartLimitIntervalUSec"] == "0"
    assert "network-online.target" in props["After"].split()
    assert "network-online.target" in props["Wants"].split()


@pytest.mark.parametrize("check", ["release-id.yml"])
def test_the_release_id_covers_the_python_version(host, check):
    result = run_playbook(host, check)
    assert result.returncode == 0, result.stdout[-3000:]
