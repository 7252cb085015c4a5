"""Competing delivery across processes while subscribers are SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.channels import StoreMessage, new_message_id
from edda.journal.database import Database
from edda.journal.migrations import migrate
from edda.journal.writes import apply_all

CHILD = Path(__file__).parent / "support" / "channel_child.py"
JOBS = 2000


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, str(CHILD), *args], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line == "ready", f"child printed {line!r}"
    return child


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    if child.stdout is not None:
        child.stdout.close()


def _handled(side_db: Path) -> list[int]:
    with sqlite3.connect(side_db, timeout=60) as side:
        return [n for (n,) in side.execute("SELECT n FROM handled")]


def _wait_handled(side_db: Path, at_least: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(set(_handled(side_db))) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {len(set(_handled(side_db)))} of {at_least} jobs handled "
                         f"within {timeout}s")


async def _queue_jobs(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        await migrate(db)

        await apply_all(db, [StoreMessage(new_message_id(), "jobs", {"n": n}, None, {}, None)
                             for n in range(JOBS)])
    finally:
        await db.dispose()


async def _journaled(db_url: str) -> tuple[Counter[int], Counter[int], int]:
    db = Database.open(db_url)
    try:
        async with db.read() as conn:
            bodies: list[str] = []
            for table in (schema.journal, schema.journal_archive):
                rows = await conn.execute(sa.select(table.c.kind, table.c.body).where(
                    table.c.kind.in_(["message_received", "activity_completed"])))
                bodies += [(r.kind, r.body) for r in rows]  # type: ignore[misc]
            left = (await conn.execute(sa.select(sa.func.count()).select_from(
                schema.channel_messages))).scalar()
    finally:
        await db.dispose()
    received: Counter[int] = Counter()
    completed: Counter[int] = Counter()
    for kind, body in bodies:  # type: ignore[misc]
        entry = json.loads(body)
        if kind == "message_received":
            received[entry["data"]["n"]] += 1
        elif entry["activity_name"] == "handle":
            completed[entry["result"]] += 1
    return received, completed, int(left or 0)


def test_competing_jobs_exactly_once_across_sigkills(db_url: str, tmp_path: Path) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE handled(n INTEGER, pid INTEGER)")
    asyncio.run(_queue_jobs(db_url))
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db)}
    children = [_spawn(["workers", "10", db_url], env), _spawn(["workers", "10", db_url], env)]
    try:
        _wait_handled(side_db, 600, 120)
        _kill(children[0])
        children[0] = _spawn(["recover", db_url], env)
        _wait_handled(side_db, 1300, 120)
        _kill(children[1])
        children[1] = _spawn(["recover", db_url], env)
        _wait_handled(side_db, JOBS, 120)
    finally:
        for child in children:
            _kill(child)
    received, completed, left = asyncio.run(_journaled(db_url))
    everything = Counter(range(JOBS))
    assert received == everything, "each job received by exactly one worker, once"
    assert completed == everything, "each job's activity journaled exactly once"
    assert left == 0, "every consumed message was deleted"
    effects = Counter(_handled(side_db))
    assert set(effects) == set(range(JOBS))
    repeated = sum(count - 1 for count in effects.values())
    assert repeated <= 20, f"{repeated} side effects repeated; only activities in flight at "\
                           "the two kills (10 workers each) may run again"
