"""The database goes away under load and comes back: no workflow fails, nothing is lost.

A hundred workflows run while a real PostgreSQL server is stopped (2, 10 and 30 s)
or its connections are cut, or while a SQLite file is read-only or its disk full.
Afterwards every workflow has completed, only steps in flight at the outage ran
again, every ``start()`` that returned an id names a stored instance, and every
one that raised left nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edda import (
    DatabaseUnavailableError,
    EddaApp,
    RetryExhaustedError,
    RetryPolicy,
    WorkflowContext,
    activity,
    send_event,
    wait_event,
    workflow,
)
from edda.journal import schema
from edda.journal.database import Database
from edda.journal.group_commit import GroupCommitWriter
from edda.journal.migrations import migrate
from edda.journal.store import InstanceFilter, SqlJournalStore
from edda.journal.waits import StoreEvent
from edda.journal.writes import SqlStore, Write, WriteContext
from edda.testing import passivate_idle
from tests.support.faults import MiB, ext4_volume, small_tmpfs
from tests.support.gates import Gate, wait_for, wait_until
from tests.support.pgserver import LocalPostgres
from tests.support.web import serve
from tests.test_workflows import GATES

pytestmark = pytest.mark.anyio
STEPS = 4


@dataclass
class Ledger:
    """Every run of a step: (n, step) -> list of (started, ended) monotonic times."""

    runs: dict[tuple[int, int], list[tuple[float, float]]] = field(default_factory=dict)


LEDGER = Ledger()


@activity
async def outage_step(ctx: WorkflowContext, n: int, step: int) -> int:
    started = time.monotonic()
    await asyncio.sleep(0.01)  # keep many steps in flight
    LEDGER.runs.setdefault((n, step), []).append((started, time.monotonic()))
    return step


@workflow
async def outage_wf(ctx: WorkflowContext, n: int) -> int:
    total = 0
    for step in range(STEPS):
        total += await outage_step(ctx, n, step)
    return total


@dataclass
class Outage:
    """When the database was away (monotonic seconds)."""

    began: float = 0.0
    ended: float = 0.0


async def _under_load(app: EddaApp, outage: Callable[[Outage], Awaitable[None]],
                      count: int = 100) -> tuple[dict[int, str], set[int], Outage]:
    """Start ``count`` workflows, half before and half during the outage."""
    LEDGER.runs.clear()
    window = Outage()
    returned: dict[int, str] = {}
    raised: set[int] = set()

    async def start(n: int) -> None:
        try:
            returned[n] = await outage_wf.start(n=n)
        except Exception:
            raised.add(n)

    first = [asyncio.create_task(start(n)) for n in range(count // 2)]

    async def some_progress() -> bool:
        return sum(len(v) for v in LEDGER.runs.values()) >= count // 4

    await wait_until(some_progress, "the first workflows to make progress", timeout=30)
    fault = asyncio.create_task(outage(window))
    await wait_until(_began(window), "the outage to begin", timeout=30)
    second = [asyncio.create_task(start(n)) for n in range(count // 2, count)]
    await fault
    await asyncio.wait_for(asyncio.gather(*first, *second), 120)
    return returned, raised, window


def _began(window: Outage) -> Callable[[], Awaitable[bool]]:
    async def began() -> bool:
        return window.began > 0

    return began


async def _check(app: EddaApp, url: str, returned: dict[int, str], raised: set[int],
                 window: Outage, count: int = 100) -> None:
    assert set(returned) | raised == set(range(count))
    for n, instance_id in returned.items():
        assert await app.wait_result(instance_id, timeout=60) == sum(range(STEPS)), n
    db = Database.open(url)
    try:
        rows = await SqlJournalStore(db, None).list_rows(
            InstanceFilter(workflow_name="outage_wf"), limit=1000, after=None)
    finally:
        await db.dispose()
    stored = {row["instance_id"] for row in rows}
    assert stored == set(returned.values()), "a start() that raised left an instance behind"
    assert all(row["status"] == "completed" for row in rows)
    for (n, step), runs in LEDGER.runs.items():
        if n in raised:
            continue
        first_started, first_ended = runs[0]
        if len(runs) > 1:  # only a step in flight while the database was away runs again
            assert first_started <= window.ended and first_ended >= window.began, (n, step, runs)
    assert {key for key in LEDGER.runs if key[0] in returned} == {
        (n, s) for n in returned for s in range(STEPS)}


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of the test's own, to stop and start."""
    server = LocalPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("seconds", [2, 10, 30])
async def test_postgresql_stopped_under_load(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp], seconds: float
) -> None:
    url = own_postgres.create_database("outage")
    app = make_app(url, lease_seconds=5.0)
    await app.initialize()

    async def stop_for(window: Outage) -> None:
        await asyncio.to_thread(own_postgres.stop_server)
        window.began = time.monotonic()
        await asyncio.sleep(seconds)  # the outage itself
        await asyncio.to_thread(own_postgres.start_server)
        window.ended = time.monotonic()

    returned, raised, window = await _under_load(app, stop_for)
    await _check(app, url, returned, raised, window)


@pytest.mark.postgres
async def test_postgresql_connections_dropped_under_load(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp]
) -> None:
    url = own_postgres.create_database("dropped")
    app = make_app(url, lease_seconds=5.0)
    await app.initialize()

    async def drop(window: Outage) -> None:
        window.began = time.monotonic()
        for _ in range(3):
            await asyncio.to_thread(own_postgres.terminate_connections, "dropped")
        window.ended = time.monotonic()

    returned, raised, window = await _under_load(app, drop)
    await _check(app, url, returned, raised, window)


@asynccontextmanager
async def _sqlite_on(path: Path, make_app: Callable[..., EddaApp]) -> AsyncIterator[EddaApp]:
    app = make_app(f"sqlite:///{path / 'edda.db'}", lease_seconds=5.0)
    await app.initialize()
    try:
        yield app
    finally:
        await app.shutdown()


async def test_sqlite_read_only_for_8_seconds_under_load(
    make_app: Callable[..., EddaApp]
) -> None:
    with ext4_volume(64 * MiB) as volume:
        async with _sqlite_on(volume.path, make_app) as app:

            async def read_only_for(window: Outage) -> None:
                volume.read_only()
                window.began = time.monotonic()
                await asyncio.sleep(8)  # the outage itself
                volume.writable()
                window.ended = time.monotonic()

            returned, raised, window = await _under_load(app, read_only_for)
            await _check(app, f"sqlite:///{volume.path / 'edda.db'}", returned, raised, window)


def _checkpoint(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def test_sqlite_disk_full_under_load(make_app: Callable[..., EddaApp]) -> None:
    with small_tmpfs(16 * MiB) as disk:
        async with _sqlite_on(disk.path, make_app) as app:

            async def full_for(window: Outage) -> None:
                # An empty WAL has to grow for the next commit: that is when the disk is full.
                await asyncio.to_thread(_checkpoint, disk.path / "edda.db")
                disk.fill()
                window.began = time.monotonic()
                await asyncio.sleep(5)  # the outage itself
                disk.free()
                window.ended = time.monotonic()

            returned, raised, window = await _under_load(app, full_for)
            await _check(app, f"sqlite:///{disk.path / 'edda.db'}", returned, raised, window)


@pytest.mark.postgres
async def test_start_says_the_truth_when_the_node_stops_during_an_outage(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp]
) -> None:
    url = own_postgres.create_database("truth")
    app = make_app(url, lease_seconds=1.0)
    await app.initialize()
    await asyncio.to_thread(own_postgres.stop_server)
    starts = [asyncio.create_task(outage_wf.start(n=n)) for n in range(10)]

    async def all_waiting() -> bool:  # each start() waits for its instance to be stored
        return len(app._runner.waiters._starts) == 10 and app._writer is not None \
            and app._writer.waiting_for_database

    await wait_until(all_waiting, "the writer to wait for the database")
    await app.shutdown()  # gives up waiting for the database after a bounded time
    outcomes = await asyncio.gather(*starts, return_exceptions=True)
    assert all(isinstance(o, DatabaseUnavailableError) and not o.maybe_committed
               and "it was not committed" in str(o) for o in outcomes), outcomes
    await asyncio.to_thread(own_postgres.start_server)
    db = Database.open(url)
    try:
        rows = await SqlJournalStore(db, None).list_rows(
            InstanceFilter(workflow_name="outage_wf"), limit=10, after=None)
    finally:
        await db.dispose()
    assert rows == [], "a start() that raised left nothing behind"


class _Refused(Write[None], frozen=True):
    """A write the database refuses (a fault of the write, not an outage)."""

    def apply(self, conn: sa.Connection, ctx: WriteContext) -> None:
        raise ValueError("refused")


async def test_a_write_whose_caller_gave_up_fails_without_an_unretrieved_error(
    tmp_path: Path,
) -> None:
    # A recovery sweep cancelled by a shutdown during an outage left its write to fail
    # unseen, and asyncio reported "Future exception was never retrieved".
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    db = Database.open(f"sqlite:///{tmp_path / 'gave-up.db'}")
    writer = GroupCommitWriter(db, "node-a")  # not started: the write waits in its queue
    try:
        await migrate(db)
        caller = asyncio.create_task(SqlStore(db, writer)._write(_Refused()))
        await wait_until(lambda: writer._queue.qsize() > 0, "the write to be queued")
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        writer.start()
        await writer.aclose()  # the write is tried, and fails, with nobody waiting
        del caller
        gc.collect()
        assert reported == [], reported
    finally:
        loop.set_exception_handler(previous)
        await db.dispose()


@pytest.mark.postgres
async def test_a_commit_cut_by_an_outage_says_so_while_it_waits_to_learn_whether_it_landed(
    own_postgres: LocalPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    # The server stops between a batch's statements and its COMMIT. Whether that COMMIT
    # went through can only be asked once the server is back; meanwhile the outage is
    # reported (it was not, for the whole outage) and the write is neither lost nor doubled.
    db = Database.open(own_postgres.create_database("cut_commit"))
    await migrate(db)
    assert db._async_writer is not None
    sa.event.listen(db._async_writer.sync_engine, "commit",
                    lambda _conn: own_postgres.stop_server(), once=True)
    writer = GroupCommitWriter(db, "node-cut")
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="edda.journal"):
            stored = writer.submit(StoreEvent("cut.commit", {"id": "e1"}, None, None))
            await wait_until(lambda: writer.waiting_for_database,
                             "the writer to report that the database is away")
            assert "the database is unavailable" in caplog.text
            assert not stored.done()
            await asyncio.to_thread(own_postgres.start_server)
            assert await stored == []
    finally:
        await writer.aclose()
    count = await db.query(lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(schema.events)).scalar())
    await db.dispose()
    assert count == 1, "the event is stored once"


SHIPMENTS = sa.Table("outage_shipments", sa.MetaData(), sa.Column("order_id", sa.String(64)))


@activity(retry_policy=RetryPolicy(max_attempts=1))  # one counted failure would fail it
async def record_shipment(ctx: WorkflowContext, order_id: str) -> str:
    await GATES["ship"].hold()  # the database goes away while this step runs
    await ctx.session.execute(sa.insert(SHIPMENTS).values(order_id=order_id))
    return order_id


@workflow
async def shipping_wf(ctx: WorkflowContext, order_id: str) -> str:
    return await record_shipment(ctx, order_id)


@pytest.mark.postgres
async def test_an_activity_whose_session_meets_an_outage_waits_instead_of_failing(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp]
) -> None:
    url = own_postgres.create_database("session")
    app = make_app(url, lease_seconds=30.0)
    await app.initialize()
    async with app.database.user_engine().begin() as conn:
        await conn.run_sync(SHIPMENTS.metadata.create_all)
    GATES["ship"] = Gate()
    try:
        started = asyncio.create_task(shipping_wf.start(order_id="S-1"))
        await wait_for(GATES["ship"].reached)
        await asyncio.to_thread(own_postgres.stop_server)
        GATES["ship"].open()  # its statement now meets the outage

        async def waiting() -> bool:
            return any("waits for the database" in r for r in _records)

        _records.clear()
        handler = _Collect()
        logging.getLogger("edda.activity").addHandler(handler)
        try:
            await wait_until(waiting, "the activity to wait for the database")
        finally:
            logging.getLogger("edda.activity").removeHandler(handler)
        await asyncio.to_thread(own_postgres.start_server)
        instance_id = await asyncio.wait_for(started, 60)
    finally:
        GATES.pop("ship", None)
    assert await app.wait_result(instance_id, timeout=30) == "S-1"
    async with app.database.user_engine().connect() as conn:
        rows = (await conn.execute(sa.select(SHIPMENTS.c.order_id))).scalars().all()
    assert rows == ["S-1"], "its write committed once, with the step"


_records: list[str] = []


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _records.append(record.getMessage())


PARTNER_CALLS: list[int] = []


@activity(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.01))
async def call_partner(ctx: WorkflowContext) -> None:
    await ctx.session.execute(sa.text("SELECT 1"))  # it uses the workflow database too
    PARTNER_CALLS.append(1)
    raise TimeoutError("the partner API timed out")  # the activity's own error


@workflow
async def partner_wf(ctx: WorkflowContext) -> None:
    await call_partner(ctx)


async def test_an_activity_own_timeout_is_not_taken_for_a_database_outage(
    sqlite_url: str, make_app: Callable[..., EddaApp]
) -> None:
    PARTNER_CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(RetryExhaustedError):
        await partner_wf.start()
    assert len(PARTNER_CALLS) == 2, "its retry policy decided: two attempts"


async def _sleepers_and_waiters_outlive(app: EddaApp, outage_begins: Callable[[], None],
                                        outage_ends: Callable[[], None]) -> None:
    """Instances asleep (due during the outage) and waiting for events, some
    resident and some passivated, through an outage longer than the lease: all
    complete afterwards, without a restart."""
    from tests.support.cluster_workflows import await_go, nap

    sleepers = [await nap.start(seconds=1.0) for _ in range(4)]
    passivate_idle(app)  # the sleepers leave memory; the waiters stay resident
    waiters = [await await_go.start(key=f"outage-{n}") for n in range(4)]
    assert app._node is not None
    placement = app._node.placement
    lost = placement.lost
    await asyncio.to_thread(outage_begins)

    async def lease_lost() -> bool:
        return placement.lost > lost

    await wait_until(lease_lost, "the node to give up the lease it cannot renew", timeout=30)
    await asyncio.to_thread(outage_ends)
    for n in range(4):
        await send_event(f"go.outage-{n}", "test", {"n": n})
    for instance_id in sleepers:
        assert await app.wait_result(instance_id, timeout=60) == app.worker_id
    for n, instance_id in enumerate(waiters):
        assert (await app.wait_result(instance_id, timeout=60))["data"] == {"n": n}


async def test_sleepers_and_waiters_outlive_a_read_only_sqlite_file(
    make_app: Callable[..., EddaApp]
) -> None:
    with ext4_volume(64 * MiB) as volume:
        app = make_app(f"sqlite:///{volume.path / 'edda.db'}", lease_seconds=2.0,
                       idle_seconds=60.0)
        await app.initialize()
        try:
            await _sleepers_and_waiters_outlive(app, volume.read_only, volume.writable)
        finally:
            await app.shutdown()


@pytest.mark.postgres
async def test_sleepers_and_waiters_outlive_a_stopped_postgresql(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(own_postgres.create_database("sleepers"), lease_seconds=2.0,
                   idle_seconds=60.0)
    await app.initialize()
    await _sleepers_and_waiters_outlive(app, own_postgres.stop_server, own_postgres.start_server)


@workflow
async def awaits_settlement(ctx: WorkflowContext) -> object:
    return (await wait_event(ctx, "payment.settled")).data


@pytest.mark.postgres
async def test_the_http_edge_answers_503_during_an_outage_and_loses_no_event(
    own_postgres: LocalPostgres, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(own_postgres.create_database("edge"), lease_seconds=5.0)
    await app.initialize()
    iid = await awaits_settlement.start()
    await wait_until(lambda: _status(app, iid, "waiting_for_message"), "the instance to wait")
    event = {"specversion": "1.0", "id": "pay-1", "type": "payment.settled", "source": "/bank",
             "data": {"amount": 12}}
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.to_thread(own_postgres.stop_server)
        # A read cannot wait for the database: 503, retryable, and nothing of the
        # driver's error in the body.
        answer = await client.get("/api/instances")
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"error": "the database is unavailable; try again shortly",
                                 "error_type": "DatabaseUnavailable", "retryable": True}
        # An event is acknowledged only once it is stored: the request waits out the
        # outage and then answers 202.
        posted = asyncio.create_task(client.post(
            "/", content=json.dumps(event),
            headers={"content-type": "application/cloudevents+json"}))
        await wait_until(lambda: app._writer is not None and app._writer.waiting_for_database,
                         "the event's write to wait for the database")
        assert not posted.done()
        await asyncio.to_thread(own_postgres.start_server)
        assert (await posted).status_code == 202
        assert (await client.get("/api/instances")).status_code == 200
    assert await app.wait_result(iid, timeout=30) == {"amount": 12}


async def _status(app: EddaApp, iid: str, status: str) -> bool:
    found = await app.get_instance(iid)
    return found is not None and found["status"] == status
