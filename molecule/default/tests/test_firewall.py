"""The nftables firewall: closed ports are refused from outside, SSH and HTTP(S) stay open."""

import re
import socket
import subprocess

from testlib import wait_until


def reachable(address, port):
    try:
        socket.create_connection((address, port), timeout=3).close()
        return True
    except OSError:
        return False


def test_firewall_refuses_ports_that_are_not_allowed(host):
    # A service listening on every address, on a port the firewall does not allow:
    # reachable on loopback, refused from outside (this test's controller).
    host.run("systemd-run --unit fw-probe --property RuntimeMaxSec=60 "
             "python3 -m http.server --bind 0.0.0.0 8081")
    try:
        wait_until(lambda: host.run("curl -s -o /dev/null http://127.0.0.1:8081/").rc == 0)
        address = subprocess.check_output(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
             host.backend.host], text=True).strip()
        assert not reachable(address, 8081)
        assert reachable(address, 443)
    finally:
        host.run("systemctl stop fw-probe")


def test_firewall_keeps_the_ssh_port_open(host):
    rules = host.check_output("nft list table inet flaskvps")
    assert "policy drop" in rules
    assert re.search(r"tcp dport \{ 22, 80, 443 \} accept", rules), rules
