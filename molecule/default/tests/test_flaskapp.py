"""The flaskapp role: users, files, units and sockets, as the apps and Nginx see them."""

import pytest
from conftest import APPS
from testlib import app_state, connect_as, http, main_pid, slot_unit


def test_python_venv_support_is_installed(host):
    assert host.package("python3-venv").is_installed


@pytest.mark.parametrize("app", APPS)
def test_app_runs_as_its_own_system_user_without_login(host, app):
    user = host.user(app)
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert host.check_output("ps -o user= -p %s", str(main_pid(host, f"{slot_unit(host, app)}.service"))) == app


@pytest.mark.parametrize("app", APPS)
def test_app_cannot_write_its_own_code(host, app):
    current = host.file(f"/srv/{app}/current")
    assert current.is_symlink
    release = f"/srv/{app}/{current.linked_to.split('/srv/' + app + '/')[-1]}"
    for path in (f"/srv/{app}", release, f"{release}/app", f"{release}/venv"):
        assert host.file(path).user == "root"
        assert host.file(path).mode == 0o755
    result = host.run("runuser -u %s -- touch %s", app, f"{release}/app/intruder")
    assert result.rc != 0 and "Permission denied" in result.stderr


@pytest.mark.parametrize("app", APPS)
def test_serving_slot_runs_now_and_at_boot_and_the_other_does_not(host, app):
    state = app_state(host, app)
    serving = state["serving_slot"]
    assert serving in ("blue", "green")
    for unit in (f"{app}-{serving}.socket", f"{app}-{serving}.service"):
        assert host.service(unit).is_enabled, unit
        assert host.run("systemctl is-active %s", unit).stdout.strip() == "active", unit
    idle = "green" if serving == "blue" else "blue"
    for unit in (f"{app}-{idle}.socket", f"{app}-{idle}.service"):
        assert host.run("systemctl is-active %s", unit).stdout.strip() != "active", unit
        assert host.run("systemctl is-enabled %s", unit).stdout.strip() != "enabled", unit
    # Nginx connects through app.sock, a link to the serving slot's socket.
    assert host.file(f"/srv/{app}/app.sock").linked_to == f"/run/{app}-{serving}.sock"
    assert host.file(f"/srv/{app}/current").linked_to == host.file(f"/srv/{app}/{serving}").linked_to


@pytest.mark.parametrize("app", APPS)
def test_socket_belongs_to_nginx_group_only(host, app):
    sock = host.file(f"/run/{slot_unit(host, app)}.sock")
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "www-data", 0o660)


@pytest.mark.parametrize("app", APPS)
def test_nginx_user_can_connect_and_others_cannot(host, app):
    # Through the link Nginx uses.
    assert connect_as(host, "www-data", f"/srv/{app}/app.sock") == ""
    assert connect_as(host, "nobody", f"/srv/{app}/app.sock") == "PermissionError"
    # Another app's user is not in Nginx's group either.
    other = "greeter" if app == "hello" else "hello"
    assert connect_as(host, other, f"/srv/{app}/app.sock") == "PermissionError"


@pytest.mark.parametrize("app", APPS)
def test_env_file_is_root_only(host, app):
    serving = app_state(host, app)["serving_slot"]
    env = host.file(f"/etc/flaskapp/{app}/{serving}/env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)


def test_secret_reaches_the_app_intact(host):
    pid = main_pid(host, f"{slot_unit(host, 'hello')}.service")
    environ = host.file(f"/proc/{pid}/environ").content.split(b"\0")
    assert b'SECRET_KEY=marker-s3cret "quoted" $dollar \\back' in environ


def test_secret_is_in_no_world_readable_file(host):
    found = host.run("grep -rlF marker-s3cret /etc /srv /var/lib /run 2>/dev/null").stdout.split()
    # The env files of hello's slots (root only, mode 0600), and nothing else.
    assert found and all(path in ("/etc/flaskapp/hello/blue/env", "/etc/flaskapp/hello/green/env") for path in found)
    assert f"/etc/flaskapp/hello/{app_state(host, 'hello')['serving_slot']}/env" in found


@pytest.mark.parametrize("app", APPS)
def test_healthz_names_the_serving_release(host, app):
    release = host.file(f"/srv/{app}/current").linked_to.rsplit("/", 1)[-1]
    response = http(host, "http://localhost/healthz", "--unix-socket", f"/srv/{app}/app.sock")
    assert response.json() == {"status": "ok", "release": release}


def test_state_directory_is_private_and_prepared_by_pre_start(host):
    state = host.file("/var/lib/hello")
    assert (state.user, state.group, state.mode) == ("hello", "hello", 0o750)
    # pre_start (`flask init-db`) created the database before the app started.
    assert host.file("/var/lib/hello/hello.sqlite3").user == "hello"
    first = http(host, "https://127.0.0.1/visits").json()["visits"]
    assert http(host, "https://127.0.0.1/visits").json()["visits"] == first + 1


@pytest.mark.parametrize("app, worker_class", [("hello", "gevent"), ("greeter", "gthread")])
def test_gunicorn_runs_the_chosen_workers_sized_to_the_host(host, app, worker_class):
    # hello takes the role's default (gevent); greeter chooses gthread.
    cores = int(host.check_output("nproc"))
    unit = slot_unit(host, app)
    pid = str(main_pid(host, f"{unit}.service"))
    assert int(host.check_output("pgrep -c -P %s", pid)) == 2 * cores + 1
    # The journal of the service's current run only.
    invocation = host.check_output("systemctl show -P InvocationID %s.service", unit)
    journal = host.check_output("journalctl -o cat _SYSTEMD_INVOCATION_ID=%s", invocation)
    assert f"Using worker: {worker_class}" in journal
    # gevent patched the standard library before the app imported it: no warning,
    # and the gevent package is in the release's virtualenv only where it is used.
    assert "MonkeyPatchWarning" not in journal and "monkey-patch" not in journal.lower()
    gevent = host.run("/srv/%s/current/venv/bin/python -c 'import gevent'", app)
    assert (gevent.rc == 0) == (worker_class == "gevent")


def test_gevent_worker_serves_many_waiting_requests_at_once(host):
    # 60 requests that each wait 2 s, at once, through Nginx (from the address the
    # abuse limits exempt): sync workers, one request each, would need 24 s and the
    # client gives up after 15 s; gevent workers answer them all together.
    script = ("seq 60 | xargs -P 60 -I{} curl -sk -o /dev/null -w '%{http_code}\\n' "
              "--max-time 15 --interface 127.0.0.3 'https://127.0.0.1/slow?ms=2000'")
    codes = host.check_output("sh -c %s", script).split()
    assert codes == ["200"] * 60
