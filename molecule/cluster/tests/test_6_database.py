"""The database host (roles/postgresql through playbooks/databases.yml): each app's
role password is a root-only file on it, stable across runs and never printed (even
with -v); the app host keeps its URL only in files only root reads; PostgreSQL listens
on the private address only; pg_hba.conf admits the app hosts over TLS only and
refuses everyone else (the load balancer, and the database host itself over TCP); the
server runs sandboxed and survives a restart."""

import hashlib
import re

import pytest
from conftest import APPS, DB, LB, cluster_playbook, instance
from testlib import http

testinfra_hosts = [f"ansible://{DB}"]
PORT = 5432
PASSWORD_DIR = "/etc/postgresql-role"

# A PostgreSQL client's first messages (protocol 3.0) for user and database, over TLS
# (as libpq's sslmode=require: encrypted, the certificate not checked) or, with
# "plain", without; prints what the server answers: "auth <code>" when it asks for a
# password (10: SCRAM), "refused <message>" when pg_hba.conf has no entry for this
# client, "unreachable <error>" when no connection is possible (the firewall drops it).
PROBE = r"""
import socket, ssl, struct, sys
host, port, user, db, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
try:
    s = socket.create_connection((host, port), timeout=3)
except OSError as e:
    sys.exit(print("unreachable", type(e).__name__))
if mode == "tls":
    s.sendall(struct.pack("!ii", 8, 80877103))
    if s.recv(1) != b"S":
        sys.exit(print("no-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    s = context.wrap_socket(s)
params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", db))) + b"\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
kind = s.recv(1)
length = struct.unpack("!i", s.recv(4))[0]
body = b""
while len(body) < length - 4:
    chunk = s.recv(length - 4 - len(body))
    if not chunk:
        break
    body += chunk
if kind == b"R":
    print("auth", struct.unpack("!i", body[:4])[0])
elif kind == b"E":
    fields = dict((f[:1], f[1:].decode(errors="replace")) for f in body.split(b"\0") if f)
    print("refused", fields.get(b"M", ""))
else:
    print("other", kind)
"""


def probe(client, address, database, mode="tls"):
    """Try to log in as the app's role from client; what the server answers."""
    return client.check_output(
        "python3 -c %s %s %s %s %s %s", PROBE, address, str(PORT), database, database, mode).strip()


def address_of(name):
    """A cluster host's private address, as the other hosts resolve its name."""
    return instance(LB).check_output("getent hosts %s", name).split()[0]


@pytest.fixture(scope="module")
def databases(host):
    """The app databases the role made (one password file each)."""
    names = host.check_output("ls -1 %s", PASSWORD_DIR).split()
    assert names, f"no password files in {PASSWORD_DIR}"
    return names


def password(host, name):
    return host.check_output("cat %s/%s", PASSWORD_DIR, name).strip()


def test_each_app_has_a_root_only_password(host, databases):
    folder = host.file(PASSWORD_DIR)
    assert (folder.user, folder.group, folder.mode) == ("root", "root", 0o700)
    for name in databases:
        secret = host.file(f"{PASSWORD_DIR}/{name}")
        assert (secret.user, secret.group, secret.mode) == ("root", "root", 0o600), name
        assert re.fullmatch(r"[A-Za-z0-9]{32}", password(host, name)), name
    # SCRAM verifiers only, no plain or MD5 password in the catalogue.
    stored = host.check_output(
        "runuser -u postgres -- psql -Atc %s",
        "SELECT rolname || ' ' || left(rolpassword, 14) FROM pg_authid WHERE rolcanlogin AND rolname <> 'postgres'")
    assert sorted(line.split()[0] for line in stored.splitlines()) == sorted(databases)
    assert all(line.endswith("SCRAM-SHA-256$") for line in stored.splitlines()), stored


def test_a_second_run_keeps_the_passwords_and_prints_none(host, databases):
    before = {name: hashlib.sha256(password(host, name).encode()).hexdigest() for name in databases}
    result = cluster_playbook(instance(LB), "databases.yml", "-v")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(rf"^{DB}\s*:.*\bchanged=0\b", result.stdout, re.M), result.stdout[-1500:]
    after = {name: hashlib.sha256(password(host, name).encode()).hexdigest() for name in databases}
    assert after == before
    for name in databases:
        assert password(host, name) not in result.stdout + result.stderr, f"{name}'s password was printed"


def test_the_app_hosts_keep_the_password_in_files_only_root_reads(host, databases):
    secrets = [password(host, name) for name in databases]
    for name in APPS:
        app = instance(name)
        for secret in secrets:
            # Every file holding it, and whether anyone but its owner may read it.
            found = app.run(
                "grep -rlsF %s /etc /srv /var /run /tmp /home /opt /usr/local 2>/dev/null "
                "| xargs -r stat -c '%%a %%U %%n'", secret).stdout.split("\n")
            found = [line for line in found if line]
            assert found, f"{name} has no DATABASE_URL with the password"
            for line in found:
                mode, owner, _ = line.split(" ", 2)
                assert owner == "root" and int(mode, 8) & 0o004 == 0, f"{name}: {line}"


def test_postgresql_listens_on_the_private_address_only(host):
    private = address_of(DB)
    assert host.socket(f"tcp://{private}:{PORT}").is_listening
    for anywhere in ("0.0.0.0", "::"):
        assert not host.socket(f"tcp://{anywhere}:{PORT}").is_listening
    # And on the unix socket, for the postgres user (Ansible, backups).
    assert host.file(f"/run/postgresql/.s.PGSQL.{PORT}").is_socket


def test_pg_hba_admits_the_app_hosts_only(host, databases):
    private = address_of(DB)
    for name in APPS:
        # SCRAM (10) is asked for: the app host may try its password, over TLS only.
        assert probe(instance(name), private, databases[0]) == "auth 10", name
        answer = probe(instance(name), private, databases[0], "plain")
        assert answer.startswith("refused") and "no encryption" in answer, answer
    # The load balancer: the firewall drops it, or pg_hba.conf refuses it before any
    # password is asked for.
    answer = probe(instance(LB), private, databases[0])
    assert answer.startswith(("unreachable", "refused")), answer
    # pg_hba.conf alone (past the firewall: the database host itself, over TCP).
    answer = probe(host, private, databases[0])
    assert answer.startswith("refused") and "no pg_hba.conf entry" in answer, answer
    hba = host.file(host.check_output("runuser -u postgres -- psql -Atc 'SHOW hba_file'")).content_string
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert not [rule for rule in rules if rule[-1] in ("trust", "password", "md5")], rules
    assert not [rule for rule in rules if rule[0] not in ("local", "hostssl")], rules
    assert ["local", "all", "postgres", "peer"] in rules


def test_no_other_role_may_connect_to_an_app_database(host, databases):
    # The database's ACL has no entry for PUBLIC ("=c/..."): only its owner connects.
    for name in databases:
        acl = host.check_output("runuser -u postgres -- psql -Atc %s",
                                f"SELECT datacl FROM pg_database WHERE datname = '{name}'")
        assert acl and not re.search(r"[{,]=", acl), acl


def test_the_server_is_sandboxed_and_survives_a_restart(host, databases):
    unit = host.check_output("systemctl list-units --plain --no-legend 'postgresql@*' | awk '{print $1}'")
    exposure = host.check_output("systemd-analyze security %s | tail -1", unit)
    assert float(re.search(r"level for \S+: (\d+\.\d+)", exposure).group(1)) <= 2.0, exposure
    assert host.check_output("ps -o user= -C postgres | sort -u") == "postgres"
    host.run_expect([0], "systemctl restart %s", unit)
    assert host.service(unit).is_running
    # The app answers through its database again.
    assert http(instance(APPS[0]), "http://127.0.0.1/visits", "-H", "Host: hello.test").status == 200


@pytest.mark.parametrize("setting", ["shared_buffers", "effective_cache_size", "password_encryption"])
def test_tuning_follows_the_host(host, setting):
    value = host.check_output("runuser -u postgres -- psql -Atc %s", f"SHOW {setting}")
    if setting == "password_encryption":
        assert value == "scram-sha-256"
        return
    # A share of the host's memory, as the role computes it (unless the inventory sets it).
    memory_kb = int(host.check_output("awk '/MemTotal/ {print $2}' /proc/meminfo"))
    share = {"shared_buffers": 0.25, "effective_cache_size": 0.75}[setting]
    number, unit = re.fullmatch(r"(\d+)(kB|MB|GB|TB)", value).groups()
    size_kb = int(number) * {"kB": 1, "MB": 1024, "GB": 1024 ** 2, "TB": 1024 ** 3}[unit]
    assert abs(size_kb - memory_kb * share) < memory_kb * 0.02, value
