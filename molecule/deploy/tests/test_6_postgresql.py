"""PostgreSQL on the app host itself (the instance is in `databases` too): the app
reaches it over the unix socket with its own password, nothing listens on TCP, and
what the app writes through Nginx is in its database."""

import uuid

from testlib import app_state, http


def test_the_app_uses_its_database_over_the_unix_socket(host):
    env = host.file(f"/etc/flaskapp/hello/{app_state(host, 'hello')['serving_slot']}/env")
    assert env.user == "root" and env.mode == 0o600
    assert "DATABASE_URL=" in env.content_string and "host=/run/postgresql" in env.content_string
    # Nothing listens for PostgreSQL over the network on a single host.
    assert ":5432" not in host.check_output("ss -Hltn")
    note = uuid.uuid4().hex
    posted = http(host, "https://127.0.0.1/notes", "-X", "POST", "-d", f"id={note}", "-H", "Host: localhost")
    assert posted.status == 201, posted.body
    query = f"SELECT count(*) FROM notes WHERE id = '{note}'"
    assert host.check_output("sudo -u postgres psql -d hello -Atc %s", query) == "1"
