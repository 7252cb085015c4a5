"""Fencing with SIGSTOP and SIGCONT: a node frozen in the middle of an activity
past its lease, and (SQLite) one frozen while it holds the write lock inside a
``ctx.session`` activity. When it resumes, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from edda import EddaApp, send_event
from edda.journal.entries import ActivityCompleted
from edda.journal.partitions import DEFAULT_PARTITIONS
from edda.journal.store import read_journal
from tests.support.cluster import NodeProcess, ids_in, owned, split_between, started_node
from tests.support.cluster_workflows import freeze_me
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
LEASE = 2.0


def _marked(side: Path, key: str, child: NodeProcess, what: str) -> Callable[[], object]:
    async def marked() -> bool:
        return (side / f"{key}.{child.pid}.{what}").exists()

    return marked


async def _steps(app: EddaApp, key: str) -> list[ActivityCompleted]:
    return [r.entry for r in await read_journal(app.database, key)
            if isinstance(r.entry, ActivityCompleted)]


async def test_a_node_frozen_mid_activity_past_its_lease_writes_nothing(
    db_url: str, make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDDA_SIDE_DIR", str(tmp_path))  # this node runs the step too
    app = make_app(db_url, lease_seconds=LEASE, recovery_interval=60.0, workflows=[freeze_me])
    await app.initialize()
    child = await started_node(app, db_url, lease=LEASE, env={"EDDA_SIDE_DIR": str(tmp_path)})
    try:
        (key,) = ids_in(await asyncio.to_thread(child.partitions), "frozen", 1)
        await asyncio.to_thread(child.start_workflow, "freeze_me", key, key=key, locked=False)
        await send_event(f"go.{key}", "test", {})
        await wait_until(_marked(tmp_path, key, child, "began"), "the step to begin there")
        child.signal(signal.SIGSTOP)

        async def taken() -> bool:
            return owned(app) == set(range(DEFAULT_PARTITIONS))

        await wait_until(taken, "this node to take the frozen node's partitions", timeout=15)
        # The step was in flight there: it runs again here, and the result is ours.
        assert await app.wait_result(key, timeout=15) == app.worker_id
        child.signal(signal.SIGCONT)  # its step ends, or its actor is stopped first

        async def gone() -> bool:
            return await asyncio.to_thread(child.ask, f"resident {key}") == "no"

        await wait_until(gone, "the resumed node to find itself fenced off", timeout=15)
        steps = await _steps(app, key)
        assert [s.result for s in steps] == [app.worker_id], "only this node's step journaled"
        inst = await app.get_instance(key)
        assert inst is not None and inst["output_data"] == {"result": app.worker_id}
    finally:
        child.signal(signal.SIGCONT)
        child.kill()


async def test_a_node_frozen_holding_the_sqlite_write_lock_loses_and_doubles_nothing(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDDA_SIDE_DIR", str(tmp_path))
    app = make_app(sqlite_url, lease_seconds=LEASE, recovery_interval=60.0,
                   workflows=[freeze_me])
    await app.initialize()
    await app.database.write(lambda conn: conn.execute(sa.text(
        "CREATE TABLE frozen_steps (key TEXT, node TEXT)")))
    child = await started_node(app, sqlite_url, lease=LEASE,
                               env={"EDDA_SIDE_DIR": str(tmp_path)})
    try:
        (key,) = ids_in(await asyncio.to_thread(child.partitions), "locked", 1)
        await asyncio.to_thread(child.start_workflow, "freeze_me", key, key=key, locked=True)
        await send_event(f"go.{key}", "test", {})
        await wait_until(_marked(tmp_path, key, child, "began"), "the step to take the lock")
        child.signal(signal.SIGSTOP)  # with the write lock held: nobody can write

        async def lost() -> bool:
            assert app._node is not None
            return app._node.placement.lost >= 1

        await wait_until(lost, "this node to give up its lease it cannot renew", timeout=15)
        child.signal(signal.SIGCONT)
        result = await app.wait_result(key, timeout=30)
        rows = await app.database.query(lambda conn: conn.execute(sa.text(
            "SELECT node FROM frozen_steps WHERE key = :k"), {"k": key}).scalars().all())
        assert rows == [result], "the step's own write committed once, with its journal entry"
        assert [s.result for s in await _steps(app, key)] == [result]

        await wait_until(lambda: split_between(app, child),
                         "each node to hold its own share again", timeout=20)
    finally:
        child.signal(signal.SIGCONT)
        child.kill()
