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
import targets
from servers import SERVERS, AppCommand, Server, by_name, without_gevent_patching

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


def test_plan_measures_each_server_on_its_loads_once_per_round_and_reverses_every_other_round():
    made = [(r.server.name, r.route, r.concurrency, r.scenario) for r in run.plan(SERVERS)]
    for server in SERVERS:
        assert set(server.loads) <= set(run.LOADS), server.name  # else never measured
        for load in server.loads:
            assert made.count((server.name, *load)) == 1, (server.name, load)
        assert {scenario for *_, scenario in server.loads} <= set(run.SCENARIOS)
    assert len(made) == sum(len(s.loads) for s in SERVERS)
    # The servers a target compares run one after the other, on each load.
    assert made.index(("stack", "/page", 50, "normal")) - made.index(("gunicorn-direct", "/page", 50, "normal")) == 1
    assert run.plan(SERVERS, 1) == run.plan(SERVERS)[::-1] and run.plan(SERVERS, 2) == run.plan(SERVERS)


def fake_round(round_no, **rps):
    """One round's runs: {server: rps} on `/` c50 (and stack's slowloris run)."""
    return [{"server": server.replace("_", "-"), "route": "/", "concurrency": 50, "scenario": "normal",
             "rps": value, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0, "requests": 100, "round": round_no,
             "cpu_s": {"nginx": 0.1, "python": 0.2}, "nginx_us_per_request": 50.0,
             "error_kinds": dict.fromkeys(("connect", "read", "write", "timeout", "status", "stalled"), 0)}
            for server, value in rps.items()]


def test_ratios_are_the_median_of_the_rounds_with_their_range_and_noise():
    measured = (fake_round(1, stack=4000, flask_dev=1000) + fake_round(2, stack=4400, flask_dev=1000)
                + fake_round(3, stack=3000, flask_dev=1000))
    ratios = {r["name"]: r for r in targets.compute(run.combine(measured))}
    hello = ratios["hello_vs_dev"]
    assert (hello["rounds"], hello["median"], hello["min"], hello["max"]) == ([4.0, 4.4, 3.0], 4.0, 3.0, 4.4)
    # A spread of 1.4x around a median of 4x is 35 points: noisy; the median meets 3.5x.
    assert hello["noisy"] is True and hello["met"] is True and hello["spread_pp"] == 35.0
    # Not measured (no /page runs): no figures, SKIP.
    assert ratios["page_vs_dev"]["median"] is None and ratios["page_vs_dev"]["met"] is None
    checks = {c["target"].split("`")[1]: c for c in targets.checks(list(ratios.values()))}
    assert checks["hello_vs_dev"]["status"] == "PASS" and "noisy" in checks["hello_vs_dev"]["measured"]
    assert checks["page_vs_dev"]["status"] == "SKIP"
    assert targets.check_format(list(ratios.values()), [r.name for r in targets.RATIOS]) == []


def test_a_ratio_with_errors_fails_whatever_its_value():
    measured = []
    for n in (1, 2, 3):
        normal = fake_round(n, stack=1000)
        measured += normal + [dict(normal[0], scenario="slowloris", rps=990, errors=1 if n == 2 else 0,
                                   slowloris={"opened": 400})]
    kept = next(r for r in targets.compute(run.combine(measured)) if r["name"] == "slowloris_kept")
    assert (kept["median"], kept["errors"], kept["noisy"], kept["met"]) == (99.0, 1, False, False)


def test_memory_of_two_apps_is_each_rounds_nginx_and_apps_added_up_and_fails_on_errors_beside():
    two = by_name("two-apps-1cpu")
    # Two apps of 3 workers, each its own unit and server block; the second loaded beside.
    assert [app.workers for app in two.apps] == [3, 3] and len(set(two.units(None))) == 2
    assert two.beside(None) == [two.apps[1].url(None)] and two.url(None) == two.apps[0].url(None)
    measured = []
    for n, (nginx, apps, errors_beside) in enumerate([(30, 170, 0), (31, 190, 2), (29, 160, 0)], 1):
        figures = {"nginx": {"pss_mb": nginx, "rss_mb": 40, "processes": 2},
                   "app": {"pss_mb": apps, "rss_mb": 300, "processes": 8}}
        measured += [dict(fake_round(n, two_apps_1cpu=800)[0], route="/page", scenario="memory",
                          memory={"idle": figures, "load": figures,
                                  "beside": [{"requests": 100, "rps": 790, "errors": errors_beside}]})]
    memory = next(r for r in targets.compute(run.combine(measured)) if r["name"] == "memory_1cpu_mb")
    assert (memory["rounds"], memory["median"], memory["errors"], memory["met"]) == (
        [200, 221, 189], 200, 2, False)


@pytest.mark.parametrize("broken", [
    {"median": 5.0}, {"min": 9.0}, {"unit": "req/s"}, {"better": "more"}, {"rounds": ["4"]},
    {"noisy": None}, {"target": "3.5"}])
def test_a_malformed_ratio_is_named(broken):
    ratios = targets.compute(run.combine(fake_round(1, stack=4000, flask_dev=1000)
                                         + fake_round(2, stack=4100, flask_dev=1000)))
    hello = next(r for r in ratios if r["name"] == "hello_vs_dev")
    hello.update(broken)
    problems = targets.check_format(ratios, [r.name for r in targets.RATIOS])
    assert problems and all(p.startswith("hello_vs_dev: ") for p in problems), problems


def test_a_server_added_to_the_list_is_planned_and_charted(tmp_path):
    extra = AppCommand(name="gunicorn-4sync", about="4 sync workers", color="#8c564b",
                       port=8005, command="{venv}/bin/gunicorn --workers 4 {app}:app")
    servers = [*SERVERS, extra]
    assert {(r.route, r.concurrency, r.scenario) for r in run.plan(servers) if r.server is extra} == set(extra.loads)
    result = json.loads((RESULTS / "latest.json").read_text())
    result["runs"].append(dict(result["runs"][0], server=extra.name))
    report.write(result, tmp_path, servers)
    assert report.check_output(tmp_path, servers) == []
    assert report.check_output(tmp_path, [*servers, Server(name="missing", about="")]) == [
        "no run of ['missing']"]


# --- settings -------------------------------------------------------------------------------

def test_settings_come_from_options_then_the_environment_then_defaults():
    full = bench.parse_args([], {})
    assert (full.duration, full.warmup, full.slowloris, full.provision, full.container, full.rounds,
            full.pin) == (6, 1, 400, True, "flask-vps-demo", 3, True)
    assert full.out == RESULTS
    smoke = bench.parse_args(["--smoke"], {})
    assert (smoke.duration, smoke.warmup, smoke.provision, smoke.out, smoke.rounds) == (
        1, 0, False, RESULTS / "smoke", 2)
    env = {"BENCH_DURATION": "3", "BENCH_PROVISION": "0", "BENCH_CONTAINER": "other",
           "BENCH_OUT": "/tmp/x", "BENCH_ROUNDS": "5", "BENCH_PIN": "0"}
    from_env = bench.parse_args([], env)
    assert (from_env.duration, from_env.provision, from_env.container, from_env.out, from_env.rounds,
            from_env.pin) == (3, False, "other", Path("/tmp/x"), 5, False)
    given = bench.parse_args(["--duration", "2", "--provision", "--container", "c", "--rounds", "4",
                              "--pin"], env)
    assert (given.duration, given.provision, given.container, given.rounds, given.pin) == (
        2, True, "c", 4, True)


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
    assert targets.compute(result["runs"]) == result["ratios"]
    assert targets.checks(result["ratios"]) == result["checks"]
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
