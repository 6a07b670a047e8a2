"""ACME: Pebble issues the certificate, Nginx serves it, and renewal reloads Nginx."""

import re
import time

from conftest import served_certificate

BUNDLE = "REQUESTS_CA_BUNDLE=/etc/pebble/pebble-tls.pem"


def test_nginx_serves_the_certificate_pebble_issued(host):
    cert = served_certificate(host)
    assert "Pebble" in cert["issuer"], cert
    assert "acme.test" in cert["subject"] + cert["san"], cert
    for name in ("fullchain.pem", "privkey.pem"):
        path = f"/etc/nginx/tls/hello/{name}"
        assert host.file(path).is_symlink
        assert host.check_output("readlink %s", path) == f"/etc/letsencrypt/live/hello/{name}"


def test_the_app_answers_over_https_with_the_issued_certificate(host):
    # Verified against the CA that issued it, not with -k.
    host.run_expect([0], "curl -fsS -o /tmp/pebble-roots.pem -k https://localhost:15000/roots/0")
    host.run_expect([0], "curl -fsS -o /tmp/pebble-intermediates.pem -k https://localhost:15000/intermediates/0")
    out = host.check_output("curl -fsS --cacert /tmp/pebble-roots.pem https://acme.test/healthz")
    assert '"status":"ok"' in out.replace(" ", "")


def test_renewal_is_scheduled(host):
    timer = host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running
    hook = host.file("/etc/letsencrypt/renewal-hooks/deploy/reload-nginx")
    assert hook.mode == 0o755 and "systemctl reload nginx" in hook.content_string
    # Scheduled renewals trust Pebble's CA too.
    env = host.check_output("systemctl show --property Environment --value certbot.service")
    assert "REQUESTS_CA_BUNDLE=/etc/pebble/pebble-tls.pem" in env


def test_a_renewal_is_served_without_another_ansible_run(host):
    before = served_certificate(host)["serial"]
    host.run_expect([0], f"{BUNDLE} certbot renew --force-renewal --no-random-sleep-on-renew")
    # The hook's reload is graceful: new workers with the new certificate take over
    # while the old ones finish their connections.
    deadline = time.monotonic() + 20
    while served_certificate(host)["serial"] == before and time.monotonic() < deadline:
        time.sleep(0.5)
    after = served_certificate(host)["serial"]
    assert after != before
    assert re.fullmatch(r"[0-9A-F]+", after)
