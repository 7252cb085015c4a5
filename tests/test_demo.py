"""The README's demo command keeps working: it runs, crashes a child and recovers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent.parent / "examples" / "order_demo.py"


def test_demo_recovers_the_killed_order_exactly_once(tmp_path: Path) -> None:
    env = {**os.environ, "EDDA_DEMO_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "killed with SIGKILL" in out
    assert out.count("-> completed") == 2
    assert out.rstrip().endswith("Every completed step ran exactly once.")


LLAMAINDEX_DEMO = Path(__file__).parent.parent / "examples" / "llamaindex_order.py"


def test_llamaindex_example_waits_survives_the_kill_and_runs_each_step_once(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "EDDA_DEMO_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-W", "error", str(LLAMAINDEX_DEMO)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "B-2 waits for approval" in out and "killed with SIGKILL" in out
    assert "-> completed: {'order_id': 'B-2', 'status': 'shipped', 'payment': 'pay-B-2'}" in out
    assert "charged 1299.00 EUR (approved by maria)" in out
    assert out.rstrip().endswith("Every completed step ran exactly once.")
    assert done.stderr == "", "the example runs without warnings"
