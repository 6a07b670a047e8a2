"""Bad inputs fail before any change: the play exits non-zero, the message names
the variable, and packages, files and services on the host are as they were."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from testlib import run_playbook

# rel-collection is test_4_collection's own host.
testinfra_hosts = ["ansible://rel-debian13"]

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SITE = os.path.join(PROJECT, "site.yml")
APP = {"name": "hello", "src": os.path.join(PROJECT, "app"), "entrypoint": "hello:app",
       "pre_start": "flask --app hello init-db", "env": {"SECRET_KEY": "marker-9f3c2e-secret"}}


def app(**changes):
    return {"flaskapp_apps": [dict(APP, **changes)]}


# (extra vars, the variable the message must name)
BAD_INPUTS = {
    "app name with a space": (app(name="Bad Name"), "flaskapp_apps[0].name"),
    "app name of a system user": (app(name="nginx"), "flaskapp_apps[0].name"),
    "app name too long": (app(name="a" * 40), "flaskapp_apps[0].name"),
    "two apps with one name": ({"flaskapp_apps": [APP, APP]}, "flaskapp_apps"),
    "missing source directory": (app(src="/nonexistent/app"), "flaskapp_apps[0].src"),
    "source without requirements": (app(src="/tmp"), "flaskapp_apps[0].src"),
    "entry point without callable": (app(entrypoint="hello"), "flaskapp_apps[0].entrypoint"),
    "entry point with two colons": (app(entrypoint="hello:app:x"), "flaskapp_apps[0].entrypoint"),
    "static url without slashes": (app(static_url="static"), "static_url"),
    "static dir outside the source": (app(static_dir="../etc"), "static_dir"),
    "health path without slash": (app(health_path="healthz"), "health_path"),
    "env name starting with a digit": (app(env={"1BAD": "x"}), "flaskapp_apps[0].env"),
    "env value with a line break": (app(env={"GOOD": "a\nb"}), "flaskapp_apps[0].env"),
    "negative worker count": (app(workers=-1), "flaskapp_apps[0]"),
    "pre-start on two lines": (app(pre_start="a\nb"), "pre_start"),
    "app worker class unknown": (app(worker_class="eventlet"), "worker_class"),
    "two default servers": ({"flaskapp_apps": [dict(APP, default_server=True),
                                               dict(APP, name="other", default_server=True)]},
                            "default_server"),
    "zero workers": ({"flaskapp_workers": 0}, "flaskapp_workers"),
    "threads not a number": ({"flaskapp_threads": "many"}, "flaskapp_threads"),
    "worker class unknown": ({"flaskapp_worker_class": "eventlet"}, "flaskapp_worker_class"),
    "keep no releases": ({"flaskapp_keep_releases": 0}, "flaskapp_keep_releases"),
    "release command on two lines": (app(release_command="flask db upgrade\nrm -rf /"), "release_command"),
    "negative lock wait": ({"flaskapp_lock_wait": -1}, "flaskapp_lock_wait"),
    "package index not a URL": ({"flaskapp_index_url": "pypi.example"}, "flaskapp_index_url"),
    "static expiry not a time": ({"nginx_static_expires": "forever"}, "nginx_static_expires"),
    "access log buffer not a size": ({"nginx_access_log_buffer": "lots"}, "nginx_access_log_buffer"),
    "gunicorn version not a version": ({"flaskapp_gunicorn_version": "latest"}, "flaskapp_gunicorn_version"),
    "gevent version not a version": ({"flaskapp_gevent_version": ">=24"}, "flaskapp_gevent_version"),
    "no gevent connections": ({"flaskapp_worker_connections": 0}, "flaskapp_worker_connections"),
    "relative app root": ({"flaskapp_root": "srv"}, "flaskapp_root"),
    "rollback to a non-release": ({"flaskapp_rollback": "yesterday"}, "flaskapp_rollback"),
    "deploy of an unknown app": ({"flaskapp_deploy_app": "nope"}, "flaskapp_deploy_app"),
    "firewall source not an address": ({"firewall_allowed_tcp_sources": [{"port": 80, "sources": ["not-an-ip"]}]},
                                       "firewall_allowed_tcp_sources[0]"),
    "port open to all and to some": ({"firewall_allowed_tcp_sources": [{"port": 443, "sources": ["10.0.0.1"]}]},
                                     "firewall_allowed_tcp_sources"),
    "backend not in the inventory": ({"nginx_lb_backends": [{"name": "nope", "address": "10.0.0.1"}]},
                                     "nginx_lb_backends[0]"),
    "HTTP port out of range": ({"nginx_listen_port": 70000}, "nginx_listen_port"),
    "HTTPS port zero": ({"nginx_https_port": 0}, "nginx_https_port"),
    "HTTPS port same as HTTP": ({"nginx_https_port": 80}, "nginx_https_port"),
    "public HTTPS port out of range": ({"nginx_https_public_port": 99999}, "nginx_https_public_port"),
    "worker processes not a number": ({"nginx_worker_processes": "lots"}, "nginx_worker_processes"),
    "body size with a space": ({"nginx_client_max_body_size": "10 MB"}, "nginx_client_max_body_size"),
    "timeout not a time": ({"nginx_client_body_timeout": "soon"}, "nginx_client_body_timeout"),
    "rate limit not a rate": ({"nginx_limit_req_rate": "fast"}, "nginx_limit_req_rate"),
    "exempt entry not an address": ({"nginx_limit_exempt": ["not-an-ip"]}, "nginx_limit_exempt"),
    "unknown certificate source": ({"nginx_tls_source": "letsencrypt"}, "nginx_tls_source"),
    "ACME without an email": ({"nginx_tls_source": "acme",
                               "flaskapp_apps": [dict(APP, server_names=["example.com"])]}, "nginx_acme_email"),
    "ACME directory over plain HTTP": ({"nginx_acme_directory": "http://acme.test/dir"}, "nginx_acme_directory"),
    "invalid server name": (app(server_names=["bad name!"]), "server_names"),
    "frame options unknown": ({"nginx_frame_options": "ALLOWALL"}, "nginx_frame_options"),
    "CSP with a double quote": ({"nginx_content_security_policy": 'default-src "self"'},
                                "nginx_content_security_policy"),
    "negative HSTS max-age": ({"nginx_hsts_max_age": -1}, "nginx_hsts_max_age"),
    "firewall port zero": ({"firewall_allowed_tcp_ports": [0, 80]}, "firewall_allowed_tcp_ports"),
}


def snapshot(host):
    """What a run could change: packages, enabled and active units, and files."""
    return {
        "packages": host.check_output("dpkg-query -W -f '${Package} ${Version}\\n' | md5sum"),
        "units": host.check_output("systemctl list-units --all --no-legend --plain | awk '{print $1, $3, $4}' "
                                   "| grep -v -e '^session-' -e 'loadgen' | sort | md5sum"),
        "files": host.check_output("find /etc /srv /usr/local /var/lib/hello /run/hello-blue.sock /run/hello-green.sock -newer /tmp/before "
                                   "-not -path '/etc/machine-id' 2>/dev/null | sort"),
    }


@pytest.fixture(scope="module")
def outcomes(host, tmp_path_factory):
    """Run every bad input (six at a time: they stop at the checks) and snapshot the
    host before and after all of them: any change by any run would show."""
    scratch = tmp_path_factory.mktemp("bad-inputs")
    host.run_expect([0], "touch /tmp/before && sleep 1")
    before = snapshot(host)

    def attempt(case):
        extra_file = scratch / f"{abs(hash(case))}.json"
        extra_file.write_text(json.dumps(BAD_INPUTS[case][0]))
        return case, run_playbook(host, SITE, "-e", f"@{extra_file}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(pool.map(attempt, BAD_INPUTS))
    return before, snapshot(host), results


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_fails_and_names_the_variable(case, outcomes):
    _, _, results = outcomes
    variable = BAD_INPUTS[case][1]
    result = results[case]
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert variable in output, output[-3000:]
    assert "changed=0" in result.stdout


def test_an_app_host_that_is_its_own_database_behind_a_balancer_is_refused(host, tmp_path):
    # The host in all three tiers' groups: behind a balancer (rel-collection), its
    # own data would differ from the other app hosts'. Nothing runs on it.
    shape = tmp_path / "shape.yml"
    shape.write_text(json.dumps({"loadbalancers": {"hosts": {"rel-collection": {}}},
                                 "databases": {"hosts": {"rel-debian13": {}}}}))
    result = run_playbook(host, SITE, "-i", str(shape))
    assert result.returncode != 0, result.stdout[-3000:]
    assert "rel-debian13 is in both `webservers` and `databases`" in result.stdout, result.stdout[-3000:]
    assert "changed=0" in result.stdout


def test_bad_inputs_changed_nothing_on_the_host(outcomes):
    before, after, _ = outcomes
    assert after == before


def test_at_least_thirty_bad_inputs_are_tried():
    assert len(BAD_INPUTS) >= 30
