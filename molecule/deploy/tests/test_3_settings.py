"""Settings go live only with a trial that passed with them: a bad value fails the
deploy, changes nothing that serves, and fails again on the next identical run."""

from conftest import assert_unnoticed, extra_vars, playbook, serving_release, under_load
from testlib import app_state, main_pid, run_playbook, slot_unit


def test_a_bad_setting_fails_its_trial_and_changes_nothing(host, sources, tmp_path):
    release, unit = serving_release(host), slot_unit(host, "hello")
    slot = app_state(host, "hello")["serving_slot"]
    env = host.file(f"/etc/flaskapp/hello/{slot}/env").sha256sum
    pid = main_pid(host, f"{unit}.service")
    # v2 serves (after the rollback): the same source, with a bad setting.
    bad = extra_vars(tmp_path, src=sources["v2"], env={"HELLO_MAX_SLOW_MS": "not-a-number"})
    result, load = under_load(host, "bad-setting", playbook("deploy.yml"), "-e", bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # The journal's traceback is quoted, with the env's values masked (one could be a secret).
    assert "failed its trial" in output and "ValueError" in output, output[-3000:]
    assert "not-a-number" not in output and "***" in output, output[-3000:]
    assert_unnoticed(load, minimum=2000)
    # What serves is untouched: the same slot, process, release and env file.
    assert slot_unit(host, "hello") == unit and main_pid(host, f"{unit}.service") == pid
    assert serving_release(host) == release
    assert host.file(f"/etc/flaskapp/hello/{slot}/env").sha256sum == env
    # The same run again fails again: it never reports success with other settings on disk.
    again = run_playbook(host, playbook("deploy.yml"), "-e", bad)
    assert again.returncode != 0 and "failed its trial" in again.stdout + again.stderr
    # And what serves is still exactly what a run with the good settings wants.
    good = run_playbook(host, playbook("deploy.yml"), "-e", extra_vars(tmp_path, src=sources["v2"]))
    assert good.returncode == 0 and "changed=0" in good.stdout, good.stdout[-3000:]
