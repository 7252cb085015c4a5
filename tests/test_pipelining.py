"""Writes an actor does not wait for: the workflow computes on while they commit,
but nothing leaves the actor before they are durable, and a failed one restarts it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable

import anyio
import pytest
from sqlalchemy import Connection, event
from sqlalchemy.exc import OperationalError

from edda import EddaApp, WorkflowContext, activity, workflow
from edda.actors.instance_journal import InstanceJournal, WriteLost
from edda.actors.supervisor import Supervisor
from edda.journal.entries import ActivityCompleted, kind_of
from edda.journal.migrations import LATEST_VERSION
from edda.journal.store import read_journal
from edda.journal.writes import Write
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]

#: The app under test and a gate that holds its journal writer, for the activities below.
HELD: dict[str, object] = {}


class HoldWriter(Write[None], frozen=True):
    """A write that blocks the writer's thread until ``gate`` opens."""

    gate: threading.Event

    def apply(self, conn: object, ctx: object) -> None:
        self.gate.wait(30)


def _hold_writer(app: EddaApp, gate: threading.Event) -> None:
    """Queue a writer job that blocks the writer's thread until ``gate`` opens."""
    writer = app._writer
    assert writer is not None
    HELD["blocker"] = writer.submit(HoldWriter(gate))


@activity
async def first_step(ctx: WorkflowContext) -> int:
    app, gate = HELD["app"], HELD["gate"]
    assert isinstance(app, EddaApp) and isinstance(gate, threading.Event)
    _hold_writer(app, gate)  # so this step's result cannot commit until the test says so
    return 1


@activity
async def second_step(ctx: WorkflowContext) -> list[str]:
    app = HELD["app"]
    assert isinstance(app, EddaApp)
    # What the journal holds when this step's side effects begin.
    return [kind_of(r.entry) for r in await read_journal(app.database, ctx.instance_id)]


@workflow
async def two_steps(ctx: WorkflowContext) -> list[str]:
    await first_step(ctx)
    return await second_step(ctx)


async def test_an_activity_starts_only_after_earlier_results_are_committed(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    gate = threading.Event()
    HELD.update(app=app, gate=gate)
    started = asyncio.create_task(two_steps.start())
    writer = app._writer
    assert writer is not None

    async def result_queued() -> bool:  # first_step's result waits behind the held writer
        return writer._queue.qsize() >= 1

    try:
        await wait_until(result_queued, "first_step's result to be queued")
    finally:
        gate.set()
    instance_id = await started
    inst = await app.get_instance(instance_id)
    assert inst is not None and inst["status"] == "completed"
    seen = inst["output_data"]["result"]
    assert "activity_completed" in seen, f"second_step ran before first_step committed: {seen}"
    HELD.clear()


async def test_a_failed_submitted_write_restarts_the_actor(sqlite_url: str,
                                                           make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    instance_id = await two_steps_done(app)
    writer = app._writer
    assert writer is not None
    records = await read_journal(app.database, instance_id)
    # An actor whose next seq is already taken: its submitted write fails.
    actor = InstanceJournal(instance_id, "two_steps", 1, records, writer,
                          next_seq=records[-1].seq)
    actor.submit(ActivityCompleted(position="x:1", call=9, activity_name="x", result=None))
    with pytest.raises(WriteLost):
        await actor.settled()
    with pytest.raises(WriteLost):  # and a later write is refused, not committed past it
        await actor.append(ActivityCompleted(position="y:1", call=10, activity_name="y",
                                             result=None))
    assert [r.seq for r in await read_journal(app.database, instance_id)] == [
        r.seq for r in records]

    # The supervisor treats WriteLost as a crash: the actor restarts from its journal.
    runs = 0
    finished = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise WriteLost("a submitted write failed")
        finished.set()

    supervisor = Supervisor(lambda key, error: asyncio.sleep(0))
    supervisor.backoff_initial = 0.001
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.run)
        supervisor.spawn("actor", body)
        await asyncio.wait_for(finished.wait(), 10)
        tg.cancel_scope.cancel()
    assert runs == 2


async def two_steps_done(app: EddaApp) -> str:
    gate = threading.Event()
    gate.set()
    HELD.update(app=app, gate=gate)
    try:
        return await two_steps.start()
    finally:
        HELD.clear()


async def test_a_quick_read_on_a_busy_database_goes_to_a_reader_thread(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    db = app.database
    inline = db._inline_reader
    assert inline is not None
    loop_thread = threading.get_ident()
    busy: list[int] = []

    def locked_on_the_loop(conn: object, cursor: object, statement: str, *args: object) -> None:
        # Fault injection: the loop's connection finds the file locked, as SQLite
        # reports it while another process holds it exclusively.
        if threading.get_ident() == loop_thread:
            busy.append(1)
            raise OperationalError(statement, None, sqlite3.OperationalError("database is locked"))

    event.listen(inline, "before_cursor_execute", locked_on_the_loop)
    threads: list[int] = []

    def count(conn: Connection) -> int:
        threads.append(threading.get_ident())
        return int(conn.exec_driver_sql("SELECT count(*) FROM edda_schema").scalar() or 0)

    try:
        assert await db.query(count, quick=True) == LATEST_VERSION
    finally:
        event.remove(inline, "before_cursor_execute", locked_on_the_loop)
    assert busy == [1] and threads == [loop_thread, threads[1]] and threads[1] != loop_thread
    # Unbusy, it stays on the loop; other errors are not retried elsewhere.
    threads.clear()
    assert await db.query(count, quick=True) == LATEST_VERSION
    assert threads == [loop_thread]
    with pytest.raises(OperationalError, match="no such table"):
        await db.query(lambda conn: conn.exec_driver_sql("SELECT * FROM nowhere").all(),
                       quick=True)
