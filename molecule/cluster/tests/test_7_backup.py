"""Backups that are proven: postgresql-backup.timer is active; a run of
postgresql-backup.service writes a pg_dump of each database and keeps only the newest
postgresql_backup_keep; a failed dump fails the unit where an operator looks
(systemctl --failed, the journal); and the round trip: notes written through the app,
a backup, the database dropped, playbooks/restore.yml, and every note of the backup is
back (a note written after it is not), owned by the app's role, the app serving."""

import json
import uuid

import pytest
from conftest import APPS, DB, LB, cluster_playbook, instance
from testlib import http

testinfra_hosts = [f"ansible://{DB}"]
BACKUP_DIR = "/var/backups/postgresql"
APP = "hello"


def backups(host, database):
    """The database's backup files, oldest first (their names sort by time)."""
    return sorted(host.run("ls -1 %s/%s.*.pgc", BACKUP_DIR, database).stdout.split())


def notes_url(path=""):
    return f"http://127.0.0.1/notes{path}"


def app_request(path="", *curl_args):
    """A request to the app through an app host's own Nginx (plain HTTP behind the balancer)."""
    return http(instance(APPS[0]), notes_url(path), "-H", f"Host: {APP}.test", *curl_args)


def write_note(note_id):
    response = app_request("", "-H", "Content-Type: application/json",
                           "--data", json.dumps({"id": note_id, "body": f"body of {note_id}"}))
    assert response.status == 201, (response.status, response.body)


@pytest.fixture(scope="module")
def keep(host):
    return int(host.ansible.get_variables().get("postgresql_backup_keep", 7))


def test_the_backup_timer_is_active(host):
    timer = host.service("postgresql-backup.timer")
    assert timer.is_enabled and timer.is_running
    unit = host.check_output("systemctl cat postgresql-backup.timer")
    assert "Persistent=true" in unit
    exposure = host.check_output("systemd-analyze security postgresql-backup.service | tail -1")
    assert "SAFE" in exposure or "OK" in exposure, exposure


def test_a_backup_run_dumps_each_database_and_keeps_the_newest(host, keep):
    # Older backups than any real one (their names sort first), one more than kept.
    fake = [f"{BACKUP_DIR}/{APP}.2000{n:04d}T000000.000Z.pgc" for n in range(1, keep + 2)]
    for path in fake:
        host.run_expect([0], "install -o postgres -g postgres -m 0600 /dev/null %s", path)
    host.run_expect([0], "systemctl start postgresql-backup.service")
    kept = backups(host, APP)
    assert len(kept) == keep, kept
    newest = kept[-1]
    assert newest not in fake
    # The newest is a whole custom-format dump (pg_restore can list it), postgres-only.
    listing = host.check_output("runuser -u postgres -- pg_restore --list %s", newest)
    assert "TABLE public notes" in listing
    dump = host.file(newest)
    assert (dump.user, dump.mode) == ("postgres", 0o600)
    assert host.file(BACKUP_DIR).mode == 0o700
    assert not host.run("ls -A %s | grep -F .partial", BACKUP_DIR).stdout
    # The fakes left are the newest of them; this test's files go.
    host.run("rm -f %s", " ".join(fake))


def test_a_failed_backup_fails_the_unit(host):
    host.run_expect([0], "chmod 0500 %s", BACKUP_DIR)
    try:
        result = host.run("systemctl start postgresql-backup.service")
        assert result.rc != 0
        assert host.run("systemctl is-failed postgresql-backup.service").stdout.strip() == "failed"
        assert "postgresql-backup.service" in host.check_output("systemctl --failed --no-legend --plain")
        journal = host.check_output("journalctl -u postgresql-backup.service -n 20 --no-pager")
        assert "BACKUP FAILED" in journal and "Permission denied" in journal
    finally:
        host.run("chmod 0700 %s", BACKUP_DIR)
        host.run("systemctl reset-failed postgresql-backup.service")
    host.run_expect([0], "systemctl start postgresql-backup.service")


def test_backup_drop_restore_round_trip(host):
    run = uuid.uuid4().hex[:8]
    written = [f"rt-{run}-{n}" for n in range(20)]
    for note_id in written:
        write_note(note_id)
    host.run_expect([0], "systemctl start postgresql-backup.service")
    after_backup = f"rt-{run}-late"
    write_note(after_backup)

    host.run_expect([0], "runuser -u postgres -- dropdb --force %s", APP)
    assert app_request().status == 500  # no database: the app cannot answer

    result = cluster_playbook(instance(LB), "restore.yml", "-e", f"postgresql_restore_database={APP}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"Restored {APP} from {BACKUP_DIR}/{APP}." in result.stdout

    for note_id in written:
        response = app_request(f"/{note_id}")
        assert response.status == 200, (note_id, response.status, response.body)
        assert response.json()["body"] == f"body of {note_id}"
    assert app_request(f"/{after_backup}").status == 404
    owners = host.check_output(
        "runuser -u postgres -- psql -d %s -Atc %s", APP,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == APP
    assert host.check_output("runuser -u postgres -- psql -Atc %s",
                             f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{APP}'") == APP
    # The app writes again.
    write_note(f"rt-{run}-after-restore")


def test_restore_names_what_is_missing(host):
    missing = cluster_playbook(instance(LB), "restore.yml")
    assert missing.returncode != 0
    assert "postgresql_restore_database=NAME" in missing.stdout
    unknown = cluster_playbook(instance(LB), "restore.yml", "-e", "postgresql_restore_database=nosuchdb")
    assert unknown.returncode != 0 and "nosuchdb" in unknown.stdout
