"""HTTPS as a security reviewer checks it: protocol versions, HTTP/2, no session tickets,
the redirect to HTTPS, ACME challenges over HTTP, and the certificates and their keys."""

import os
import re
import shlex
import subprocess

import pytest
from testlib import http


def tls_handshake(host, *args):
    """openssl s_client against Nginx's HTTPS port; returns (rc, output)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:443", "-servername", "localhost", *args]
    # Keep printable text only: after an h2 handshake the server sends binary frames.
    script = shlex.join(argv) + " </dev/null 2>&1 | tr -cd '\\11\\12\\15\\40-\\176'"
    result = host.run("bash -o pipefail -c %s", script)
    return result.rc, result.stdout


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused(host, version):
    # The client offers the old version with every cipher; the server must refuse.
    rc, out = tls_handshake(host, version, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert rc != 0, out
    assert "Cipher is (NONE)" in out or "alert" in out or "no protocols available" in out


@pytest.mark.parametrize("version,name", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_current_tls_versions_are_accepted(host, version, name):
    rc, out = tls_handshake(host, version)
    assert rc == 0, out
    assert re.search(rf"Protocol\s*:\s*{re.escape(name)}|New, {re.escape(name)}", out), out


def test_alpn_negotiates_http2(host):
    rc, out = tls_handshake(host, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: h2" in out, out
    assert host.check_output("curl -sk -o /dev/null -w '%{http_version}' https://127.0.0.1/") == "2"


def test_no_session_tickets(host):
    rc, out = tls_handshake(host, "-tls1_2")
    assert "TLS session ticket:" not in out


def test_http_redirects_to_the_public_https_port(host):
    response = http(host, "http://127.0.0.1/some/page?x=1")
    assert response.status == 301
    # molecule.yml sets nginx_https_public_port: 8443, as the demo does.
    assert response.headers["location"] == "https://127.0.0.1:8443/some/page?x=1"


def test_acme_challenges_are_answered_over_http(host):
    webroot = "/var/www/acme/.well-known/acme-challenge"
    host.run_expect([0], "mkdir -p %s && echo token-content > %s/test-token", webroot, webroot)
    try:
        response = http(host, "http://127.0.0.1/.well-known/acme-challenge/test-token")
        assert response.status == 200
        assert response.body.strip() == "token-content"
    finally:
        host.run("rm -f %s/test-token", webroot)


def served_fingerprint(host, name):
    return host.check_output(
        "openssl s_client -connect 127.0.0.1:443 -servername %s </dev/null 2>/dev/null"
        " | openssl x509 -noout -fingerprint -sha256", name)


def test_provided_certificate_is_served(host):
    # greeter uses tls_source: provided, with the certificate prepare.yml made.
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "greeter.crt")) as f:
        provided = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                                  input=f.read(), capture_output=True, text=True, check=True).stdout.strip()
    assert served_fingerprint(host, "greeter.test") == provided
    # hello keeps its self-signed one.
    assert served_fingerprint(host, "localhost") != provided


def test_private_keys_are_root_only(host):
    for app in ("hello", "greeter"):
        key = host.file(f"/etc/nginx/tls/{app}/privkey.pem")
        assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
        assert host.file(f"/etc/nginx/tls/{app}").mode == 0o700
