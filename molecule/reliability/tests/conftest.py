"""The reliability scenario's tests use the helpers in molecule/common/testlib.py."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "common"))

from testlib import http, main_pid, run_playbook, slot_unit, wait_until  # noqa: E402,F401
