"""ACME certificates follow their vhost's names; a host with IPv6 off still serves."""

import os
import subprocess

from conftest import served_certificate


def run_playbook(host, playbook):
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(project, "ansible.cfg"),
               ANSIBLE_ROLES_PATH=os.path.join(project, "roles"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit",
                           host.backend.host, os.path.join(scenario, playbook)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_nginx_starts_where_ipv6_is_off_and_listens_on_ipv6_only_if_it_can(host):
    # Docker starts this scenario's containers with IPv6 off on every interface. The
    # role adds [::] listeners only where an IPv6 socket can be bound, as Nginx will
    # bind it (a kernel without IPv6 refuses that, and Nginx would not start).
    assert host.file("/proc/sys/net/ipv6/conf/all/disable_ipv6").content_string.strip() == "1"
    can_bind = host.run("python3 -c %s", "import socket; socket.socket(socket.AF_INET6).bind(('::', 0))").rc == 0
    listening = host.check_output("ss -Hltn")
    assert "0.0.0.0:443 " in listening, listening
    assert ("[::]:443 " in listening) == can_bind, listening
    assert host.service("nginx").is_running


def test_a_name_added_to_the_vhost_gets_a_certificate_for_it(host):
    before = served_certificate(host)
    assert "www.acme.test" not in before["san"], before
    result = run_playbook(host, "acme-names.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    after = served_certificate(host)
    assert "DNS:www.acme.test" in after["san"] and "DNS:acme.test" in after["san"], after
    assert after["serial"] != before["serial"]
    # And the next run asks for nothing: the names match.
    again = run_playbook(host, "acme-names.yml")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
