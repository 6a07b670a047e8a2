"""What Nginx passes between clients and apps: WebSocket upgrades, streamed responses."""

import shlex

from conftest import http

GREETER = ("-H", "Host: greeter.test")


def test_websocket_upgrade_reaches_the_app(host):
    # A WebSocket handshake (HTTP/1.1, as browsers send it) reaches the app with its
    # Upgrade header and "Connection: upgrade"...
    response = http(host, "https://127.0.0.1/ws-headers", "--http1.1", *GREETER,
                    "-H", "Upgrade: websocket", "-H", "Connection: Upgrade")
    # (Werkzeug matches a websocket rule only for a handshake it recognises.)
    assert response.status == 200, response.body
    seen = response.json()["headers"]
    assert seen.get("Upgrade") == "websocket", seen
    assert seen.get("Connection", "").lower() == "upgrade", seen


def test_plain_requests_carry_no_upgrade_and_keep_the_upstream_alive(host):
    # ...while a plain request gets neither (an empty Connection header keeps the
    # upstream connection alive; test_nginx proves the reuse).
    for version in ("--http1.1", "--http2"):
        seen = http(host, "https://127.0.0.1/headers", version, *GREETER).json()["headers"]
        assert "Upgrade" not in seen and "Connection" not in seen, seen


def line_delays(host, query, *curl_args):
    """Fetch greeter's /stream; for each line, seconds between the app producing it
    and the client reading it (both clocks are the instance's)."""
    curl = shlex.join(["curl", "-sSkN", *curl_args, *GREETER, f"https://127.0.0.1/stream?{query}"])
    script = curl + ' | while IFS= read -r l; do echo "$l $(date +%s.%N)"; done'
    out = host.check_output("bash -o pipefail -c %s", script)
    # "line <i> at <produced> <arrived>"
    return [float(arrived) - float(produced) for _, _, _, produced, arrived in map(str.split, out.splitlines())]


def test_responses_are_buffered_by_default(host):
    # The control: with buffering, gzip (every browser asks for it) holds a response
    # until its buffer fills or the response ends, so the first line arrives only
    # with the last, 2 x 600 ms after it was produced.
    delays = line_delays(host, "n=3&gap_ms=600", "--compressed")
    assert len(delays) == 3 and delays[0] > 1.0, delays


def test_x_accel_buffering_no_from_the_app_streams_the_response(host):
    # The app's X-Accel-Buffering: no turns buffering off for that response: every
    # line arrives as soon as it is produced, compressed (gzip) or not.
    for compressed in ((), ("--compressed",)):
        delays = line_delays(host, "n=3&gap_ms=600&accel=no", *compressed)
        assert len(delays) == 3 and max(delays) < 0.4, (compressed, delays)
