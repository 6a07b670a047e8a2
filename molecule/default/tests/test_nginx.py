"""The nginx role: what a client sees through Nginx, and that a broken config never lands."""

import time

import pytest
from conftest import serving
from testlib import http, run_playbook, slot_unit, wait_until


def test_nginx_is_installed_enabled_and_running(host):
    assert host.package("nginx").is_installed
    assert host.service("nginx").is_enabled
    assert host.service("nginx").is_running


def test_nginx_leaves_the_cores_to_the_apps(host):
    # One worker per four cores, at least one; each may open twice its 8192 connections.
    cores = int(host.check_output("nproc"))
    workers = host.check_output("pgrep -P %s", host.check_output("cat /run/nginx.pid")).split()
    assert len(workers) == max(cores // 4, 1)
    for pid in workers:
        limits = host.file(f"/proc/{pid}/limits").content_string.splitlines()
        assert next(line for line in limits if line.startswith("Max open files")).split()[3] == "16384"


def test_default_site_is_gone(host):
    assert not host.file("/etc/nginx/sites-enabled/default").exists


def test_app_answers_through_nginx(host):
    response = http(host, "https://127.0.0.1/")
    assert response.status == 200
    assert "Hello from Flask" in response.body
    # No version in the Server header.
    assert response.headers["server"] == "nginx"


def test_two_apps_share_the_host_by_name(host):
    assert "Howdy from greeter" in http(host, "https://127.0.0.1/", "-H", "Host: greeter.test").body
    # Unknown names go to the default server (hello).
    assert "Hello from Flask" in http(host, "https://127.0.0.1/", "-H", "Host: unknown.test").body


def test_real_client_address_reaches_the_app(host):
    # The client connects from 127.0.0.2; the app behind the unix socket must see that,
    # and not an address the client forged in X-Forwarded-For.
    seen = http(host, "https://127.0.0.1/client", "--interface", "127.0.0.2",
                "-H", "X-Forwarded-For: 6.6.6.6").json()
    assert seen["remote_addr"] == "127.0.0.2"
    assert seen["scheme"] == "https"


def test_healthz_is_ok_through_nginx(host):
    assert http(host, "https://127.0.0.1/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("url,host_header,text", [
    ("https://127.0.0.1/static/style.css", "localhost", "font-family"),
    ("https://127.0.0.1/assets/greeter.txt", "greeter.test", "greeter static file"),
])
def test_static_files_come_from_nginx_even_with_the_app_down(host, url, host_header, text):
    unit = slot_unit(host, "hello" if host_header == "localhost" else "greeter")
    host.run_expect([0], "systemctl stop %s.socket %s.service", unit, unit)
    try:
        assert http(host, "https://127.0.0.1/", "-H", f"Host: {host_header}").status == 502
        response = http(host, url, "-H", f"Host: {host_header}")
        assert response.status == 200
        assert text in response.body
    finally:
        host.run_expect([0], "systemctl start %s.service", unit)
    wait_until(lambda: serving(host))


def test_static_files_are_revalidated_so_a_deploy_never_leaves_them_stale(host):
    # Browsers keep the file but ask again each time (no-cache), and get a 304 while
    # it is unchanged: after a deploy they get the new file at once.
    url = "https://127.0.0.1/static/style.css"
    first = http(host, url)
    assert first.status == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.headers["etag"] and first.headers["last-modified"]
    again = http(host, url, "-H", f"If-None-Match: {first.headers['etag']}")
    assert again.status == 304
    # The security headers stay on static files too.
    assert first.headers["x-content-type-options"] == "nosniff"


def test_fingerprinted_static_files_are_cached_for_a_year(host):
    # greeter sets static_immutable: browsers never ask again, and the security
    # headers (which a location's own add_header would drop) are still there.
    response = http(host, "https://127.0.0.1/assets/greeter.txt", "-H", "Host: greeter.test")
    assert response.status == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in response.headers["strict-transport-security"]


def test_upstream_connections_are_kept_alive(host):
    # Several requests through Nginx reuse one connection to Gunicorn's socket.
    for _ in range(5):
        http(host, "https://127.0.0.1/")
    established = host.check_output("ss -x state connected src /run/%s.sock | tail -n +2 | wc -l",
                                    slot_unit(host, "hello"))
    assert int(established) >= 1


def test_a_request_is_in_the_access_log_within_seconds_though_lines_are_buffered(host):
    # nginx_access_log_buffer: lines are written a bufferful at a time, and at the
    # latest a second after the first (flush=1s). One request alone fills no buffer:
    # without the flush its line would wait for many more requests.
    tag = f"logged-{time.monotonic_ns()}"
    assert http(host, f"https://127.0.0.1/healthz?{tag}").status == 200
    wait_until(lambda: host.run("grep -c -- %s /var/log/nginx/access.log", tag).stdout.strip() == "1",
               timeout=5, interval=0.25)
    assert " buffer=64k flush=1s;" in host.check_output("nginx -T 2>/dev/null | grep '^ *access_log '")


def test_broken_config_never_replaces_the_running_one(host):
    vhost = host.file("/etc/nginx/sites-enabled/hello.conf")
    before = vhost.sha256sum
    result = run_playbook(host, "broken-config.yml")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert 'unknown directive "this_is_not_a_directive"' in output, output[-3000:]
    assert host.file("/etc/nginx/sites-enabled/hello.conf").sha256sum == before
    assert host.run("nginx -t").rc == 0
    assert serving(host)
