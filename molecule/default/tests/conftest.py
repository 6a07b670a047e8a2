"""The default scenario's two apps, as molecule.yml defines them (helpers: testlib)."""

from testlib import http

APPS = ("hello", "greeter")


def serving(host):
    """Both apps answer through Nginx."""
    return all(
        http(host, "https://127.0.0.1/healthz", "-H", f"Host: {h}").status == 200
        for h in ("localhost", "greeter.test")
    )
