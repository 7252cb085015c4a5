"""Crash tests: SIGKILL a real child process mid-workflow, recover in a fresh one."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edda.journal.database import Database
from edda.journal.entries import (
    ActivityCompleted,
    CompensationDone,
    CompensationsStarted,
    WorkflowCompleted,
)
from edda.journal.store import InstanceFilter, SqlJournalStore, read_journal
from tests.support.processes import kill_at_line

CHILD = Path(__file__).parent / "support" / "crash_child.py"


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _kill_then_recover(child_script: Path, db_url: str, env: dict[str, str], block: str,
                       started: Callable[[], bool], what: str) -> str:
    """Run ``child_script start`` until ``started()``, SIGKILL it, then run
    ``child_script recover`` without ``block`` in the environment; its stdout."""
    child = subprocess.Popen([sys.executable, str(child_script), "start", db_url], env=env,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_until(started, 60, what)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    calm = {k: v for k, v in env.items() if k != block}
    recovered = subprocess.run([sys.executable, str(child_script), "recover", db_url], env=calm,
                               capture_output=True, text=True, timeout=90, check=False)
    assert recovered.returncode == 0, recovered.stderr
    return recovered.stdout


def _runs(side_db: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(side_db) as side:
        return list(side.execute("SELECT step, pid FROM runs ORDER BY rowid"))


async def _stored_run(db_url: str) -> tuple[str, list[Any]]:
    db = Database.open(db_url)
    try:
        rows = await SqlJournalStore(db, None).list_rows(InstanceFilter(workflow_name="ten_steps"),
                                        limit=10, after=None)
        assert len(rows) == 1
        return rows[0]["status"], await read_journal(db, rows[0]["instance_id"])
    finally:
        await db.dispose()


def test_sigkill_after_activity_5_resumes_without_redoing(db_url: str, tmp_path: Path) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(step INTEGER, pid INTEGER)")
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db), "EDDA_BLOCK_AT": "6"}
    out = _kill_then_recover(CHILD, db_url, env, "EDDA_BLOCK_AT",
                             lambda: any(step == 6 for step, _ in _runs(side_db)),
                             "activity 6 to start in the child")
    assert float(out.strip()) < 10

    counts = Counter(step for step, _ in _runs(side_db))
    assert {n: counts[n] for n in range(1, 6)} == dict.fromkeys(range(1, 6), 1), \
        "activities 1-5 completed before the kill and must not run again"
    assert counts[6] == 2, "activity 6 was in flight at the kill, so it runs again"
    assert {n: counts[n] for n in range(7, 11)} == dict.fromkeys(range(7, 11), 1)

    status, records = asyncio.run(_stored_run(db_url))
    assert status == "completed"
    positions = [r.entry.position for r in records if isinstance(r.entry, ActivityCompleted)]
    assert positions == [f"step:{n}" for n in range(1, 11)]
    final = records[-1].entry
    assert isinstance(final, WorkflowCompleted) and final.result == sum(n * n for n in range(11))


WAIT_CHILD = Path(__file__).parent / "support" / "wait_child.py"


def _run_until(mode: str, db_url: str, env: dict[str, str], marker: str) -> None:
    """Start a child, wait for its marker line, then SIGKILL it."""
    kill_at_line(WAIT_CHILD, [mode, db_url], env, marker)


def test_sigkill_while_sleeping_and_while_waiting_for_an_event(
    db_url: str, tmp_path: Path
) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(step INTEGER, pid INTEGER)")
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db)}
    _run_until("start", db_url, env, "suspended")           # killed during sleep()
    _run_until("until-event", db_url, env, "waiting")        # timer fired; killed in wait_event()
    done = subprocess.run([sys.executable, str(WAIT_CHILD), "finish", db_url], env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    runs = _runs(side_db)
    assert Counter(step for step, _ in runs) == {1: 1, 2: 1, 3: 1}, runs
    assert len({pid for _, pid in runs}) == 3, "each step ran in a different process"

    async def stored() -> tuple[str, list[str]]:
        db = Database.open(db_url)
        try:
            rows = await SqlJournalStore(db, None).list_rows(InstanceFilter(workflow_name="wait_steps"),
                                            limit=10, after=None)
            records = await read_journal(db, rows[0]["instance_id"])
            return rows[0]["output"], [type(r.entry).__name__ for r in records]
        finally:
            await db.dispose()

    output, kinds = asyncio.run(stored())
    assert output == '{"result":"done"}'
    assert kinds == ["WorkflowStarted", "ActivityCompleted", "WaitStarted", "TimerFired",
                     "ActivityCompleted", "WaitStarted", "EventReceived", "ActivityCompleted",
                     "WorkflowCompleted"]


SAGA_CHILD = Path(__file__).parent / "support" / "saga_child.py"


def _side_runs(side_db: Path) -> list[str]:
    with sqlite3.connect(side_db) as side:
        return [what for (what,) in side.execute("SELECT what FROM runs ORDER BY rowid")]


def test_sigkill_while_compensating_resumes_without_redoing(db_url: str, tmp_path: Path) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(what TEXT, pid INTEGER)")
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db), "EDDA_BLOCK_UNDO": "2"}
    _kill_then_recover(SAGA_CHILD, db_url, env, "EDDA_BLOCK_UNDO",
                       lambda: "undo 2" in _side_runs(side_db),
                       "the compensation of step 2 to start in the child")
    # Steps ran once; undo 3 finished before the kill and is not repeated; undo 2 was in
    # flight, so it runs again; undo 1 runs once, last.
    assert _side_runs(side_db) == ["step 1", "step 2", "step 3", "undo 3", "undo 2",
                                   "undo 2", "undo 1"]

    async def journal() -> list[Any]:
        db = Database.open(db_url)
        try:
            rows = await SqlJournalStore(db, None).list_rows(InstanceFilter(workflow_name="saga_steps"),
                                            limit=10, after=None)
            assert len(rows) == 1 and rows[0]["status"] == "failed"
            return await read_journal(db, rows[0]["instance_id"])
        finally:
            await db.dispose()

    records = asyncio.run(journal())
    done = [r.entry.registered_at for r in records if isinstance(r.entry, CompensationDone)]
    assert done == ["step:3", "step:2", "step:1"]
    assert sum(isinstance(r.entry, CompensationsStarted) for r in records) == 1
