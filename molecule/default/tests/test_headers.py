"""Security headers on every response: the role-wide ones, a vhost's own, the app's own."""

import pytest
from testlib import http


@pytest.mark.parametrize("path", ["/", "/static/style.css", "/no-such-page"])
def test_security_headers_on_every_response(host, path):
    headers = http(host, f"https://127.0.0.1{path}").headers
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # Nothing that names software versions.
    assert headers["server"] == "nginx"
    assert "x-powered-by" not in headers


def test_a_vhost_has_its_own_policy_and_headers(host):
    # greeter sets content_security_policy and headers (molecule.yml); hello keeps the
    # role-wide ones (test_security_headers_on_every_response).
    headers = http(host, "https://127.0.0.1/", "-H", "Host: greeter.test").headers
    assert headers["content-security-policy"] == "default-src 'self'; img-src 'self' data:"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["permissions-policy"] == "geolocation=()"
    assert headers["x-content-type-options"] == "nosniff"


def test_the_apps_own_policy_wins(host):
    # An app that sets its own Content-Security-Policy (nonces, a CDN) gets it through
    # alone, not beside Nginx's.
    response = http(host, "https://127.0.0.1/own-csp", "-H", "Host: greeter.test")
    assert response.headers["content-security-policy"] == "default-src 'self' https://cdn.greeter.test"
