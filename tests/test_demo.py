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


def test_the_demo_leaves_no_temporary_folder_behind(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EDDA_DEMO_DIR"}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, str(DEMO)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Every completed step ran exactly once." in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_make_rebuilds_a_venv_made_by_an_unsupported_python(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    (tmp_path / "Makefile").write_text((root / "Makefile").read_text())
    (tmp_path / "pyproject.toml").write_text((root / "pyproject.toml").read_text())
    stale = tmp_path / ".venv" / "bin"
    stale.mkdir(parents=True)
    (stale / "python").write_text("#!/bin/sh\necho 'Python 3.9'; exit 0\n")
    (stale / "python").chmod(0o755)
    (tmp_path / ".venv" / ".installed").write_text("")
    done = subprocess.run(["make", "-n", "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".venv").exists(), "the stale .venv is removed"
    assert "-m venv .venv" in done.stdout, "and built again"
    # A working .venv is kept.
    good = tmp_path / ".venv" / "bin"
    good.mkdir(parents=True)
    (good / "python").symlink_to(sys.executable)
    (tmp_path / ".venv" / ".installed").write_text("")
    done = subprocess.run(["make", "-n", "demo"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (tmp_path / ".venv" / "bin" / "python").exists()
