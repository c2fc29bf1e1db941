from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from banger.host.processes import process_argvs


def test_process_argvs_lists_other_processes_with_their_argv(tmp_path: Path) -> None:
    marker = str(tmp_path / "vms" / "0123456789ab")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        found = dict(process_argvs())
        assert found[child.pid][-1] == marker
        assert os.getpid() not in found
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
