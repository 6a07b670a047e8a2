import pytest
import hello


@pytest.fixture
def app(tmp_path):
    app = hello.create_app({"TESTING": True, "DATABASE": str(tmp_path / "test.sqlite3")})
    app.instance_path = str(tmp_path)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def test_index_says_hello(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Hello" in response.data


def test_healthz_reports_release(monkeypatch, tmp_path):
    monkeypatch.setenv("FLASKAPP_RELEASE", "abc123")
    app = hello.create_app({"TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "release": "abc123"}


def test_slow_waits_the_requested_time(client):
    response = client.get("/slow?ms=5")
    assert response.status_code == 200
    assert response.get_json() == {"slept_ms": 5}


@pytest.mark.parametrize("ms", ["-1", "10001", "abc"])
def test_slow_rejects_bad_durations(client, ms):
    assert client.get(f"/slow?ms={ms}").status_code == 400


def test_client_trusts_one_proxy_hop(client):
    # Nginx appends the real peer to X-Forwarded-For; a forged entry before it is ignored.
    response = client.get(
        "/client",
        headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": ""},
    )
    assert response.get_json()["remote_addr"] == "203.0.113.7"
    assert response.get_json()["scheme"] == "https"


def test_visits_count_after_init_db(app, client):
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert client.get("/visits").get_json() == {"visits": 1}
    assert client.get("/visits").get_json() == {"visits": 2}


def test_static_file_exists(client):
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert b"font-family" in response.data


def test_echo_counts_the_posted_body(client):
    response = client.post("/echo", data=b"x" * 1000)
    assert response.status_code == 200
    assert response.get_json()["received"] == 1000


def test_migrations_record_each_run(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    listed = runner.invoke(args=["migrations"]).output.split("\n")
    assert [line.split()[0] for line in listed if line] == ["dev", "dev"]


def test_a_bad_setting_stops_the_app_at_start(monkeypatch):
    monkeypatch.setenv("HELLO_MAX_SLOW_MS", "not-a-number")
    with pytest.raises(ValueError):
        hello.create_app({"TESTING": True})
