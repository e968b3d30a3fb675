"""Ctrl-C during a stage: one line on stderr and exit status 130, no traceback from the stage or
from its pool's worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STAGE = """
import time
from rebalance.core.errors import run_main
from rebalance.core.pool import pmap

def main():
    print("started", flush=True)
    if {pool}:
        pmap(time.sleep, [0.05] * 800, "work", processes=2)  # about 20 s of work
    else:
        time.sleep(60)

run_main(main)
"""


@pytest.mark.parametrize("pool", [False, True])
def test_ctrl_c_is_one_line_and_exit_130(tmp_path, pool):
    script = tmp_path / "slow.py"
    script.write_text(STAGE.format(pool=pool))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,  # its own process group: Ctrl-C reaches the stage and its workers
    )
    assert proc.stdout.readline().strip() == "started"
    time.sleep(2.0 if pool else 0.5)  # the pool's workers are up and busy
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "work:" not in line]
    expected = "interrupted: stage slow stopped; nothing half-written is kept, `dvc repro` runs it again"
    assert lines == [expected]
