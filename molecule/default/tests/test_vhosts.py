"""Changing nginx_vhosts converges: a vhost removed, renamed or reordered, the catch-all
default server taking over unknown names and giving them back. (Runs last: it
changes the vhosts, and puts them back as converge left them.)"""

import json
import os
import shlex

import pytest
import yaml
from conftest import serving
from testlib import http, run_playbook

SITES = "/etc/nginx/sites-enabled"


def scenario_vhosts():
    """The vhosts site.yml gives the nginx role in this scenario (as flaskapp makes them)."""
    group_vars = os.path.join(os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "group_vars", "webservers")
    with open(group_vars) as f:
        apps = {app["name"]: app for app in yaml.safe_load(f)["flaskapp_apps"]}
    hello = {"name": "hello", "socket": "/srv/hello/app.sock", "server_names": [], "default_server": True,
             "static_url": "/static/", "static_dir": "/srv/hello/current/app/static",
             "static_fallback_dir": "/srv/hello/previous/app/static"}
    greeter = {"name": "greeter", "socket": "/srv/greeter/app.sock", "server_names": ["greeter.test"],
               "default_server": False, "static_url": "/assets/",
               "static_dir": "/srv/greeter/current/app/src/greeter/static",
               "static_fallback_dir": "/srv/greeter/previous/app/src/greeter/static", **apps["greeter"]["nginx"]}
    return hello, greeter


def converge(host, tmp_path, vhosts):
    path = tmp_path / "vhosts.json"
    path.write_text(json.dumps({"nginx_vhosts": vhosts}))
    result = run_playbook(host, "nginx-vhosts.yml", "-e", f"@{path}")
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def sites(host):
    return set(host.check_output("ls %s", SITES).split())


def answers(host, *curl_args):
    """curl's exit status and HTTP status: 52 or 56, no reply (444); 35, a refused handshake."""
    result = host.run(shlex.join(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10", *curl_args]))
    return result.rc, result.stdout


@pytest.fixture(scope="module")
def restore(host, tmp_path_factory):
    """After the tests here, the vhosts as converge left them."""
    yield
    converge(host, tmp_path_factory.mktemp("restore"), list(scenario_vhosts()))
    assert sites(host) == {"hello.conf", "greeter.conf"}
    assert serving(host)


def test_removing_and_renaming_vhosts_converges_and_unknown_names_are_refused(host, tmp_path, restore):
    hello, greeter = scenario_vhosts()
    # hello (the default server) goes, greeter is renamed welcome and streams: the
    # catch-all becomes the default server, though the live hello.conf still had it.
    welcome = dict(greeter, name="welcome", proxy_buffering=False)
    converge(host, tmp_path, [welcome])
    assert sites(host) == {"000-default.conf", "welcome.conf"}
    assert "Howdy from greeter" in http(host, "https://greeter.test/", "--resolve", "greeter.test:443:127.0.0.1").body
    # Unknown names: no answer on HTTP (444), no handshake on HTTPS, IPv4 and IPv6.
    for address in ("127.0.0.1", "[::1]"):
        assert answers(host, f"http://{address}/", "-H", "Host: evil.example")[0] in (52, 56)
        assert answers(host, f"https://{address}/")[0] == 35  # no SNI
        assert answers(host, "https://evil.example/", "--resolve", f"evil.example:443:{address.strip('[]')}")[0] == 35
    # The app still answers by its name on HTTP (redirect).
    assert answers(host, "http://127.0.0.1/", "-H", "Host: greeter.test") == (0, "301")
    # proxy_buffering: false streams every response, gzip or not, with no header from the app.
    curl = shlex.join(["curl", "-sSkN", "--compressed", "--resolve", "greeter.test:443:127.0.0.1",
                       "https://greeter.test/stream?n=3&gap_ms=600"])
    out = host.check_output("bash -o pipefail -c %s",
                            curl + ' | while IFS= read -r l; do echo "$l $(date +%s.%N)"; done')
    delays = [float(arrived) - float(produced) for _, _, _, produced, arrived in map(str.split, out.splitlines())]
    assert len(delays) == 3 and max(delays) < 0.4, delays


def test_reordering_vhosts_moves_the_default_server(host, tmp_path, restore):
    hello, greeter = scenario_vhosts()
    # greeter first and the default server, hello named: the default moves from
    # hello.conf to greeter.conf, which no file-by-file test against the live
    # config would pass.
    converge(host, tmp_path, [dict(greeter, default_server=True), dict(hello, default_server=False,
                                                                      server_names=["hello.test"])])
    assert sites(host) == {"greeter.conf", "hello.conf"}
    assert "Howdy from greeter" in http(host, "https://127.0.0.1/", "-H", "Host: unknown.test").body
    assert "Hello from Flask" in http(host, "https://127.0.0.1/", "-H", "Host: hello.test").body


def test_static_root_serves_the_static_files_its_old_name_static_dir_served(host, tmp_path, restore):
    hello, greeter = scenario_vhosts()
    url = ("https://greeter.test/assets/greeter.txt", "--resolve", "greeter.test:443:127.0.0.1")
    before = http(host, *url)
    assert before.status == 200 and before.body
    renamed = {("static_root" if key == "static_dir" else key): value for key, value in greeter.items()}
    converge(host, tmp_path, [hello, renamed])
    after = http(host, *url)
    assert (after.status, after.body) == (before.status, before.body)
