"""What Nginx passes between clients and apps: WebSocket upgrades, streamed responses."""

import shlex
import time

import pytest
from testlib import http, wait_until

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


def test_forged_forwarding_headers_never_reach_the_app(host):
    # A client (127.0.0.2) forges every header a ProxyFix or a framework might read;
    # the app sees what Nginx knows: the client address, https, the public port
    # (8443 here, as in the demo) and the name asked for, without its port.
    forged = {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "X-Forwarded-Proto": "http",
              "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/evil",
              "Forwarded": "for=6.6.6.6;host=evil.example;proto=http", "X-Forwarded-Server": "evil.example",
              "X-Forwarded-Ssl": "off", "X-Client-IP": "6.6.6.6", "True-Client-IP": "6.6.6.6"}
    args = ["--interface", "127.0.0.2", "-H", "Host: Greeter.TEST:8443"]
    for name, value in forged.items():
        args += ["-H", f"{name}: {value}"]
    seen = http(host, "https://127.0.0.1/headers", *args).json()["headers"]
    assert seen["Host"] == "greeter.test", seen
    assert seen["X-Forwarded-For"] == "127.0.0.2" and seen["X-Real-Ip"] == "127.0.0.2", seen
    assert seen["X-Forwarded-Proto"] == "https", seen
    assert seen["X-Forwarded-Host"] == "greeter.test", seen
    assert seen["X-Forwarded-Port"] == "8443", seen
    for name in ("X-Forwarded-Prefix", "Forwarded", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Client-Ip",
                 "True-Client-Ip"):
        assert name not in seen, seen


def burst(host, url, *curl_args, count):
    """count requests at once, 50 at a time; the status codes seen."""
    argv = ["curl", "-sk", "--parallel", "--parallel-max", "50", *curl_args, "-w", "%{http_code}\n"]
    for i in range(count):
        argv += ["-o", "/dev/null", f"{url}{'&' if '?' in url else '?'}n={i}"]
    return host.check_output(shlex.join(argv)).split()


@pytest.fixture
def ipv6_clients(host):
    """Addresses of three IPv6 clients on loopback: two in one /64, one in another."""
    clients = ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:3::a"]
    for address in clients:
        host.run_expect([0], "ip -6 addr add %s/128 dev lo nodad", address)
    yield clients
    for address in clients:
        host.run("ip -6 addr del %s/128 dev lo", address)
    time.sleep(6)  # let the limits' buckets refill for the tests that follow


def test_nginx_listens_on_ipv6(host):
    listening = host.check_output("ss -Hltn")
    for port in (80, 443):
        assert f"[::]:{port} " in listening, listening
    assert "Hello from Flask" in http(host, "https://[::1]/").body
    assert http(host, "http://[::1]/").status == 301


def test_an_ipv6_client_is_limited_by_its_64(host, ipv6_clients):
    first, same_64, other_64 = ipv6_clients
    # The first client spends the budget of its /64 (500 at once, then 100/s)...
    codes = burst(host, "https://[::1]/", "--interface", first, count=1500)
    assert "429" in codes and "200" in codes
    # ...which its neighbour in the same /64 shares, while another /64 has its own.
    assert "429" in burst(host, "https://[::1]/", "--interface", same_64, count=200)
    assert set(burst(host, "https://[::1]/", "--interface", other_64, count=200)) == {"200"}
    # The app sees the address itself.
    seen = http(host, "https://[::1]/client", "--interface", other_64).json()
    assert seen["remote_addr"] == other_64


FRONT = """
# A proxy in front of the role's Nginx (a load balancer), connecting from 127.0.0.9.
pid /tmp/front/nginx.pid;
error_log /tmp/front/error.log;
user www-data;
events { worker_connections 4096; }
http {
    access_log off;
    upstream main { server 127.0.0.1:443; keepalive 16; }
    server {
        listen 127.0.0.1:8081;
        location / {
            proxy_pass https://main;
            proxy_bind 127.0.0.9;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_ssl_server_name on;
            proxy_ssl_name $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Port 443;
        }
    }
}
"""


@pytest.fixture
def front_proxy(host):
    """A second Nginx on 127.0.0.1:8081, in nginx_trusted_proxies (molecule.yml)."""
    host.run_expect([0], "mkdir -p /tmp/front")
    host.run_expect([0], "cat > /tmp/front/nginx.conf <<'EOF'\n%s\nEOF" % FRONT)
    host.run_expect([0], "nginx -c /tmp/front/nginx.conf")
    yield "http://127.0.0.1:8081"
    host.run("kill $(cat /tmp/front/nginx.pid)")
    time.sleep(6)  # let the limits' buckets refill for the tests that follow


def test_clients_behind_a_trusted_proxy_are_seen_and_counted_each(host, front_proxy):
    # The app and the access log see the client behind the proxy, and its scheme.
    seen = http(host, f"{front_proxy}/client", "--interface", "127.0.0.21").json()
    assert seen["remote_addr"] == "127.0.0.21" and seen["scheme"] == "https", seen
    wait_until(lambda: "127.0.0.21 - " in host.check_output("tail -n 20 /var/log/nginx/access.log"))
    # One client behind the proxy spends its budget; another one behind the same proxy
    # still has its own (before, all of them shared the proxy's).
    codes = burst(host, f"{front_proxy}/", "--interface", "127.0.0.21", count=1500)
    assert "429" in codes and "200" in codes
    assert set(burst(host, f"{front_proxy}/", "--interface", "127.0.0.22", count=200)) == {"200"}
    # The proxy's own scheme and port reach the app.
    headers = http(host, f"{front_proxy}/headers", "-H", "Host: greeter.test",
                   "-H", "X-Forwarded-Proto: http").json()["headers"]
    assert headers["X-Forwarded-Proto"] == "https" and headers["X-Forwarded-Port"] == "443", headers


def test_a_direct_clients_forwarded_for_is_ignored(host):
    # Only nginx_trusted_proxies may say who the client is.
    seen = http(host, "https://127.0.0.1/client", "--interface", "127.0.0.2",
                "-H", "X-Forwarded-For: 127.0.0.21").json()
    assert seen["remote_addr"] == "127.0.0.2"
