"""Dry runs: `--check --diff` on a fresh host and on a converged one, a real
converge at -vvv that never shows the secret, and a run of one role by its tag."""

import os

from testlib import http, run_playbook, slot_unit

# rel-collection is test_4_collection's own host.
testinfra_hosts = ["ansible://rel-debian13"]

SITE = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "site.yml")
MARKER = "marker-9f3c2e-secret"


def test_check_mode_on_a_fresh_host_completes_and_changes_nothing(host):
    assert not host.package("nginx").is_installed
    result = run_playbook(host, SITE, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    # A dry run: still nothing installed, no app user.
    assert not host.package("nginx").is_installed
    assert not host.user("hello").exists


def test_converge_at_vvv_never_shows_the_secret(host):
    result = run_playbook(host, SITE, "-vvv")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert MARKER not in result.stdout + result.stderr
    assert http(host, "https://127.0.0.1/healthz").status == 200
    # The secret is where it belongs: in the app's environment, from a 0600 file.
    env = host.file(f"/etc/flaskapp/hello/{slot_unit(host, 'hello').split('-')[-1]}/env")
    assert env.mode == 0o600 and MARKER in env.content_string


def test_check_mode_on_a_converged_host_reports_no_change(host):
    result = run_playbook(host, SITE, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "changed=0" in result.stdout and "failed=0" in result.stdout


def test_a_run_with_tags_checks_everything_and_changes_nothing(host):
    # One role only (--tags nginx): the checks still run first (their tasks carry the
    # tag always), so the role has what they resolve; on a converged host, no change.
    result = run_playbook(host, SITE, "--tags", "nginx")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "changed=0" in result.stdout and "failed=0" in result.stdout
    assert "Check every variable against meta/argument_specs.yml" in result.stdout
