"""The benchmark's own code, without a container: reading Nginx's config, the plan
drawn from the registry of servers, the settings, and the report's format against
the committed reference results (bench/results)."""

import json
import shutil
from pathlib import Path

import bench
import nginxconf
import pytest
import report
import run
from servers import SERVERS, AppCommand, Server, without_gevent_patching

RESULTS = Path(bench.__file__).resolve().parent / "results"


# --- nginxconf ---------------------------------------------------------------------------

VHOST = r"""# a comment
upstream hello_app {
    server unix:/srv/hello/app.sock;
    keepalive 32;  # trailing comment
}
map $upstream_http_x "~^(?<a>[0-9]{1,5});$" {
    ""      "default-src 'self'; frame-ancestors 'none'";
    default "";
}
server {
    listen 443 ssl http2;
    location / {
        proxy_set_header Connection "";
        proxy_set_header X-Name ${host}x;
        proxy_pass http://hello_app;
    }
}
"""


def test_nginxconf_reads_blocks_quotes_comments_and_variables():
    conf = nginxconf.parse(VHOST)
    assert [d.name for d in conf] == ["upstream", "map", "server"]
    upstream = nginxconf.find(conf, "upstream hello_app")
    assert [(d.name, d.args) for d in upstream.block] == [
        ("server", ["unix:/srv/hello/app.sock"]), ("keepalive", ["32"])]
    mapping = nginxconf.find(conf, "map")
    assert mapping.args == ["$upstream_http_x", '"~^(?<a>[0-9]{1,5});$"']
    assert mapping.block[0].args == ['"default-src \'self\'; frame-ancestors \'none\'"']
    location = nginxconf.find(conf, "server", "location /")
    assert [d.args for d in location.block] == [
        ["Connection", '""'], ["X-Name", "${host}x"], ["http://hello_app"]]
    assert nginxconf.find(conf, "server", "location /static/") is None


def test_nginxconf_writes_back_what_it_read():
    conf = nginxconf.parse(VHOST)
    assert nginxconf.parse(nginxconf.dump(conf)) == conf
    assert "        proxy_set_header Connection \"\";\n" in nginxconf.dump(conf) + "\n"


@pytest.mark.parametrize("text", ["server {", "server { }}", "listen 80", "a 'b;", "{ }"])
def test_nginxconf_refuses_what_nginx_would(text):
    with pytest.raises(ValueError):
        nginxconf.parse(text)


def test_another_worker_class_gets_the_conf_without_gevents_patching():
    conf = ("from gevent import monkey\n\nmonkey.patch_all()\n\nimport os\n"
            "worker_class = \"gevent\"\nworkers = 5\n")
    namespace = {}
    exec(without_gevent_patching(conf), namespace)
    assert namespace["workers"] == 5 and namespace["worker_class"] == "gevent"
    assert "monkey" not in namespace and "gevent.monkey" not in namespace
    assert "monkey" not in without_gevent_patching(conf)


# --- the plan, from the registry -----------------------------------------------------------

def test_registry_names_and_ports_are_unique():
    names = [s.name for s in SERVERS]
    ports = [s.port for s in SERVERS if s.port]
    assert len(set(names)) == len(names) and len(set(ports)) == len(ports)
    assert len({s.color for s in SERVERS if s.color}) == len([s for s in SERVERS if s.color])


def test_plan_measures_each_server_on_its_loads_and_mirrors_the_c50_runs():
    made = [(r.server.name, r.route, r.concurrency, r.scenario) for r in run.plan(SERVERS)]
    for server in SERVERS:
        for route, concurrency in server.loads:
            count = made.count((server.name, route, concurrency, "normal"))
            assert count == (2 if (route, concurrency) == ("/", 50) else 1), (server.name, route)
        assert made.count((server.name, "/", 50, "slowloris")) == (1 if server.slowloris else 0)
    assert len(made) == sum(len(s.loads) + (s.loads.count(("/", 50))) + s.slowloris for s in SERVERS)
    # The chart's servers first; a slowloris run right after the server's `/` c50 run.
    charted = [name in {s.name for s in SERVERS if s.color} for name, *_ in made]
    assert charted == sorted(charted, reverse=True)
    for i, (name, route, concurrency, scenario) in enumerate(made):
        if scenario == "slowloris":
            assert made[i - 1] == (name, route, concurrency, "normal")


def test_a_server_added_to_the_list_is_planned_and_charted(tmp_path):
    extra = AppCommand(name="gunicorn-4sync", about="4 sync workers", color="#8c564b",
                       port=8005, command="{venv}/bin/gunicorn --workers 4 {app}:app")
    servers = [*SERVERS, extra]
    assert {(r.route, r.concurrency) for r in run.plan(servers) if r.server is extra} == set(extra.loads)
    result = json.loads((RESULTS / "latest.json").read_text())
    result["runs"].append(dict(result["runs"][0], server=extra.name))
    report.write(result, tmp_path, servers)
    assert report.check_output(tmp_path, servers) == []
    assert report.check_output(tmp_path, [*servers, Server(name="missing", about="")]) == [
        "no run of ['missing']"]


# --- settings -------------------------------------------------------------------------------

def test_settings_come_from_options_then_the_environment_then_defaults():
    full = bench.parse_args([], {})
    assert (full.duration, full.warmup, full.slowloris, full.provision, full.container) == (
        6, 1, 400, True, "flask-vps-demo")
    assert full.out == RESULTS
    smoke = bench.parse_args(["--smoke"], {})
    assert (smoke.duration, smoke.warmup, smoke.provision, smoke.out) == (1, 0, False, RESULTS / "smoke")
    env = {"BENCH_DURATION": "3", "BENCH_PROVISION": "0", "BENCH_CONTAINER": "other",
           "BENCH_OUT": "/tmp/x"}
    from_env = bench.parse_args([], env)
    assert (from_env.duration, from_env.provision, from_env.container, from_env.out) == (
        3, False, "other", Path("/tmp/x"))
    given = bench.parse_args(["--duration", "2", "--provision", "--container", "c"], env)
    assert (given.duration, given.provision, given.container) == (2, True, "c")


# --- the report, against the committed reference results ------------------------------------

def sections(text):
    """summary.md's sections by title ("": what comes before the first)."""
    first, *parts = text.split("\n## ")
    return {"": first, **{part.split("\n", 1)[0]: part for part in parts}}


def test_committed_results_are_well_formed():
    assert report.check_output(RESULTS, SERVERS) == []


def test_report_of_the_committed_results_has_their_format(tmp_path):
    """summary.md written again from the committed latest.json: the same targets, worker
    classes and table of runs as the committed summary.md, and a chart."""
    result = json.loads((RESULTS / "latest.json").read_text())
    assert report.checks(result["runs"]) == result["checks"]
    report.write(result, tmp_path, SERVERS)
    assert report.check_output(tmp_path, SERVERS) == []
    assert json.loads((tmp_path / "latest.json").read_text()) == result
    ours, committed = (sections(p.read_text()) for p in (tmp_path / "summary.md", RESULTS / "summary.md"))
    assert list(ours) == list(committed)
    for title in ("", "Targets", "Where the CPU goes", "Provisioning", "All runs"):
        assert ours[title] == committed[title], title
    # The worker classes' lines (their introduction now names the proxy settings).
    assert ours["Worker classes"].split("\n\n")[2:] == committed["Worker classes"].split("\n\n")[2:]
    assert sorted(ours["Slowloris"].splitlines()) == sorted(committed["Slowloris"].splitlines())
    shutil.rmtree(tmp_path)
