"""Edda's README examples run unchanged on this runtime (each in a fresh process, in a
temporary folder, as tests/edda_readme/ explains)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "edda_readme"
ROOT = Path(__file__).parent.parent


def run(name: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / f"{name}.py")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quick_start_runs_without_an_explicit_initialize(tmp_path: Path) -> None:
    out = run("quickstart", tmp_path)
    assert "Processing payment: $99.99" in out
    assert ("RESULT {'order_id': 'ORD-123', 'status': 'paid', 'amount': 99.99}") in out
    assert (tmp_path / "workflow.db").exists()


def test_saga_compensates_in_reverse_order(tmp_path: Path) -> None:
    out = run("saga", tmp_path)
    lines = [line for line in out.splitlines() if line.startswith(("Reserved", "Cancelled"))]
    assert lines == ["Reserved book", "Reserved lamp", "Cancelled reservation for lamp",
                     "Cancelled reservation for book"]
    assert "FAILED card declined" in out and "STATUS failed" in out


def test_pydantic_input_is_validated(tmp_path: Path) -> None:
    out = run("pydantic_input", tmp_path)
    assert "RESULT {'total': 7.0, 'item_count': 2}" in out
    assert "REFUSED ('items', 0, 'quantity')" in out


def test_events_wait_read_and_time_out(tmp_path: Path) -> None:
    out = run("events", tmp_path)
    assert "PAID {'amount': 42}" in out
    assert "READ {'amount': 42, 'source': 'payment-service', 'type': 'payment.completed'}" in out
    assert "cancelled o-2" in out and "LATE timed out" in out


def test_sync_activities_run_in_a_thread(tmp_path: Path) -> None:
    assert "RESULT {'status': 'paid', 'amount': 99.99}" in run("sync_activity", tmp_path)


def test_hooks_see_the_run(tmp_path: Path) -> None:
    out = run("hooks", tmp_path)
    assert "Workflow greeting started: greeting-1" in out
    assert "Activity greet completed (cache_hit=False)" in out
    assert "Workflow greeting completed" in out and "RESULT hello edda" in out


@pytest.mark.timeout(180)
def test_channels_compete_broadcast_and_direct(tmp_path: Path) -> None:
    out = run("channels", tmp_path)
    assert "DISPATCHED sent" in out and "APPROVED {'approved': True}" in out
    assert "DONE ['job send_report', 'notified deploy done', 'notified deploy done']" in out
