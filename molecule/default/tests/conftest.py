"""The default scenario's tests use the helpers in molecule/common/testlib.py."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "common"))

from testlib import (app_state, connect_as, http, main_pid, run_playbook, serving, slot_unit,  # noqa: E402,F401
                     wait_until)

APPS = ("hello", "greeter")
