"""The transactional outbox and its relayer, against a real HTTP sink."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from edda import (
    EddaApp,
    OutboxRelayer,
    RetryPolicy,
    WorkflowContext,
    activity,
    send_event,
    send_event_transactional,
    workflow,
)
from edda.journal.outbox import outbox_rows
from tests.support.gates import Gate, finished, interrupt_and_restart, wait_until
from tests.support.web import Sink, serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
FAST = RetryPolicy(initial_interval=0.01, max_attempts=3)

ledger = sa.Table("ledger", sa.MetaData(), sa.Column("entry", sa.String(64)))
gates: dict[str, Gate] = {}
attempts: dict[str, int] = {}
post_commits: list[str] = []


async def _rows(app: EddaApp, status: str | None = None) -> list[dict[str, Any]]:
    return await app.database.query(lambda conn: outbox_rows(conn, status=status))


async def _ledger(app: EddaApp) -> list[str]:
    async with app.database.read() as conn:
        return list((await conn.execute(sa.select(ledger.c.entry))).scalars())


async def _create_ledger(app: EddaApp) -> None:
    async with app.database.user_engine().begin() as conn:
        await conn.run_sync(lambda sync: ledger.create(sync, checkfirst=True))


# -- atomic with the step --------------------------------------------------------------


@activity
async def announce(ctx: WorkflowContext, order_id: str) -> list[str]:
    first = await send_event_transactional(ctx, "order.created", "/orders",
                                           {"order_id": order_id})
    second = await send_event_transactional(ctx, "order.pdf", "/orders", b"%PDF-1.7",
                                            content_type="application/pdf")
    return [first, second]


@workflow
async def announces(ctx: WorkflowContext, order_id: str) -> list[str]:
    return await announce(ctx, order_id)


async def test_events_commit_with_the_activity_and_reach_the_broker(
        db_url: str, make_app: MakeApp) -> None:
    sink = Sink()
    async with serve(sink) as broker:
        app = make_app(db_url, outbox_enabled=True, broker_url=broker)
        await app.initialize()
        iid = await announces.start(order_id="o-1")
        json_id, pdf_id = (await finished(app, iid))["output_data"]["result"]
        await wait_until(lambda: _all_published(app, 2), "both events to be published")
    events = sink.events()
    assert events[json_id]["type"] == "order.created"
    assert events[json_id]["source"] == "/orders"
    assert events[json_id]["data"] == {"order_id": "o-1"}
    assert events[json_id]["datacontenttype"] == "application/json"
    assert events[pdf_id]["type"] == "order.pdf"
    assert events[pdf_id]["data_bytes"] == b"%PDF-1.7"
    assert events[pdf_id]["content-type"] == "application/pdf"
    assert {row["instance_id"] for row in await _rows(app)} == {iid}


async def _all_published(app: EddaApp, n: int) -> bool:
    rows = await _rows(app)
    return len(rows) == n and all(row["status"] == "published" for row in rows)


@activity(retry_policy=FAST)
async def book(ctx: WorkflowContext, entry: str) -> str:
    attempts[entry] = attempts.get(entry, 0) + 1
    await ctx.session.execute(sa.insert(ledger).values(entry=f"{entry}#{attempts[entry]}"))
    event_id = await send_event_transactional(ctx, "ledger.booked", "/ledger", {"entry": entry})

    async def remember() -> None:
        post_commits.append(entry)

    ctx.register_post_commit(remember)
    if attempts[entry] == 1:
        raise ConnectionError("the first attempt fails after writing")
    return event_id


@workflow
async def books(ctx: WorkflowContext, entry: str) -> str:
    return await book(ctx, entry)


async def test_a_failed_attempt_rolls_back_session_work_and_events(
        db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    await _create_ledger(app)
    entry = db_url.partition(":")[0]
    iid = await books.start(entry=entry)
    event_id = (await finished(app, iid))["output_data"]["result"]
    assert attempts[entry] == 2
    assert await _ledger(app) == [f"{entry}#2"]  # the first attempt's row rolled back
    rows = await _rows(app)
    assert [(r["event_id"], r["status"]) for r in rows] == [(event_id, "pending")]
    assert post_commits.count(entry) == 1


@activity
async def hold_after(ctx: WorkflowContext) -> None:
    await gates["body"].hold()


@workflow
async def body_block(ctx: WorkflowContext, entry: str) -> str:
    async with ctx.transaction():
        await ctx.session.execute(sa.insert(ledger).values(entry=entry))
        event_id = await send_event_transactional(ctx, "ledger.body", "/body", {"e": entry})
    await hold_after(ctx)
    return event_id


async def test_body_transaction_commits_once_across_a_restart(
        sqlite_url: str, make_app: MakeApp) -> None:
    setup = make_app(sqlite_url)
    await setup.initialize()
    await _create_ledger(setup)
    await setup.shutdown()
    app, _ = await interrupt_and_restart(make_app, sqlite_url, gates, "body",
                                         lambda: body_block.start(entry="b1"))
    gates["body"] = Gate()
    gates["body"].open()
    found = (await app.find_instances(workflow_name="body_block"))["instances"]
    event_id = (await finished(app, found[0]["instance_id"]))["output_data"]["result"]
    assert await _ledger(app) == ["b1"]
    assert [r["event_id"] for r in await _rows(app)] == [event_id]
    kinds = [h["event_type"] for h in await app.get_history(found[0]["instance_id"])]
    assert kinds.count("TransactionCommitted") == 1


@workflow
async def misuses(ctx: WorkflowContext) -> list[str]:
    errors = []
    try:
        await send_event_transactional(ctx, "x", "/x", {})
    except RuntimeError as exc:
        errors.append(str(exc))
    try:
        _ = ctx.session
    except RuntimeError as exc:
        errors.append(str(exc))
    async with ctx.transaction():
        try:
            await hold_after(ctx)
        except RuntimeError as exc:
            errors.append(str(exc))
    return errors


async def test_misuse_gets_clear_errors(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await misuses.start()
    outside, session, nested = (await finished(app, iid))["output_data"]["result"]
    assert "inside an @activity" in outside
    assert session.startswith("ctx.session must be accessed inside a transaction")
    assert "inside ctx.transaction()" in nested and "hold_after" in nested
    assert await _rows(app) == []


# -- the relayer ---------------------------------------------------------------------


@activity
async def emit(ctx: WorkflowContext, names: list[str]) -> list[str]:
    return [await send_event_transactional(ctx, "relay.test", "/relay", {"name": name})
            for name in names]


@workflow
async def emits(ctx: WorkflowContext, names: list[str]) -> list[str]:
    return await emit(ctx, names)


async def _statuses(app: EddaApp) -> dict[str, str]:
    return {row["event_id"]: row["status"] for row in await _rows(app)}


async def test_relayer_retries_failures_and_timeouts_and_parks_dead_events(
        sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await emits.start(names=["flaky", "slow", "broken", "refused", "fine"])
    flaky, slow, broken, refused, fine = (await finished(app, iid))["output_data"]["result"]
    # "slow" hangs until the end of the test, so its first POST surely times out; the
    # timeout is long enough that no other POST times out on a loaded machine.
    sink = Sink(hang_seconds=120.0, script={flaky: [500, 502], slow: ["hang"],
                                            broken: [503, 503, 503, 503], refused: [400]})
    async with serve(sink) as broker:
        relayer = OutboxRelayer(app, broker, poll_interval=0.2, max_retries=3,
                                backoff_base=0.05, request_timeout=2.0)
        await relayer.start()
        try:
            expected = {flaky: "published", slow: "published", broken: "dead",
                        refused: "invalid", fine: "published"}

            async def settled() -> bool:
                return await _statuses(app) == expected

            await wait_until(settled, "every event to reach its final state", timeout=20)
            # Dead and invalid events are not polled again.
            assert await relayer.relay_once() == 0
        finally:
            sink.released.set()
            await relayer.stop()
    delivered = [event_id for event_id, _, _ in sink.deliveries]
    assert delivered.count(flaky) == 3 and delivered.count(broken) == 3
    assert delivered.count(refused) == 1 and delivered.count(fine) == 1
    assert delivered.count(slow) == 2  # timed out once: delivered twice, same id
    assert set(sink.accepted_ids()) == {flaky, slow, fine}
    dead = [r for r in caplog.records if "is dead after" in r.getMessage()]
    assert len(dead) == 1 and dead[0].levelno == logging.ERROR
    assert broken in dead[0].getMessage() and "HTTP 503" in dead[0].getMessage()
    rows = {row["event_id"]: row for row in await _rows(app)}
    assert rows[broken]["attempts"] == 3 and "503" in rows[broken]["last_error"]
    assert rows[flaky]["attempts"] == 3 and rows[fine]["attempts"] == 1


def test_backoff_grows_exponentially_with_jitter_and_a_cap(sqlite_url: str) -> None:
    relayer = OutboxRelayer(EddaApp("b", sqlite_url), "http://127.0.0.1:1",
                            backoff_base=1.0, backoff_max=8.0)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {relayer.backoff(attempt) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays), (attempt, delays)
        assert len(delays) > 1  # jittered


async def test_published_events_are_deleted_after_retention(
        sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await emits.start(names=["a", "b"])
    first, second = (await finished(app, iid))["output_data"]["result"]
    sink = Sink(script={second: [503]})
    async with serve(sink) as broker:
        relayer = OutboxRelayer(app, broker, retention_hours=0, backoff_base=60)
        assert await relayer.relay_once() == 2
        await relayer.stop()
    assert await _statuses(app) == {first: "published", second: "pending"}
    assert await relayer.cleanup() == 1
    assert await _statuses(app) == {second: "pending"}


async def test_send_event_posts_to_a_broker(sqlite_url: str) -> None:
    sink = Sink()
    async with serve(sink) as broker:
        await send_event("direct.sent", "/direct", {"n": 1}, broker_url=broker)
        sink.default = 500
        with pytest.raises(httpx.HTTPStatusError):
            await send_event("direct.sent", "/direct", {"n": 2}, broker_url=broker)
    event = sink.deliveries[0][1]
    assert (event["type"], event["source"], event["data"]) == ("direct.sent", "/direct", {"n": 1})


def test_relayer_rejects_bad_settings(sqlite_url: str) -> None:
    app = EddaApp("bad", sqlite_url)
    with pytest.raises(ValueError, match="broker_url"):
        OutboxRelayer(app, "ftp://x")
    with pytest.raises(ValueError, match="max_retries"):
        OutboxRelayer(app, "http://x", max_retries=0)
    with pytest.raises(ValueError, match="broker_url is required"):
        EddaApp("bad", sqlite_url, outbox_enabled=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        EddaApp("bad", sqlite_url, outbox_enabled=True, broker_url="http://x",
                outbox_options={"nope": 1})


# -- crashes -------------------------------------------------------------------------

CHILD = Path(__file__).parent / "support" / "outbox_child.py"


async def _child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, str(CHILD), *args,
                                                stdout=asyncio.subprocess.PIPE)


async def _kill(child: asyncio.subprocess.Process) -> None:
    child.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL


async def _line(child: asyncio.subprocess.Process) -> str:
    assert child.stdout is not None
    return (await asyncio.wait_for(child.stdout.readline(), 60)).decode().strip()


async def test_sigkill_right_after_202_loses_no_event(db_url: str, make_app: MakeApp) -> None:
    from tests.support.outbox_child import awaits_ping

    child = await _child("serve", db_url)
    try:
        port, instance_id = (await _line(child)).split()
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/", json={"specversion": "1.0", "id": "k-1",
                                                   "type": "ping", "source": "/t",
                                                   "data": {"v": 1}},
                headers={"content-type": "application/cloudevents+json"})
        assert response.status_code == 202
    finally:
        await _kill(child)
    assert awaits_ping.name == "awaits_ping"
    app = make_app(db_url)
    await app.initialize()
    assert (await finished(app, instance_id))["output_data"]["result"] == {"v": 1}


async def test_sigkill_between_commit_and_relay_still_delivers(
        db_url: str, make_app: MakeApp) -> None:
    from tests.support.outbox_child import shipments

    child = await _child("commit", db_url)
    try:
        assert await _line(child) == "committed"
    finally:
        await _kill(child)
    sink = Sink()
    async with serve(sink) as broker:
        app = make_app(db_url, outbox_enabled=True, broker_url=broker)
        await app.initialize()
        await wait_until(lambda: _all_published(app, 1), "the event to be relayed")
    assert [e["type"] for _, e, _ in sink.deliveries] == ["order.shipped"]
    async with app.database.read() as conn:
        shipped = list((await conn.execute(sa.select(shipments.c.order_id))).scalars())
    assert shipped == ["o-1"]


async def test_sigkill_while_relaying_redelivers_after_the_claim_expires(
        sqlite_url: str, make_app: MakeApp) -> None:
    sink = Sink(default="hang", hang_seconds=30)
    async with serve(sink) as broker:
        child = await _child("relay", sqlite_url, broker)
        try:
            assert await _line(child) == "committed"
            await asyncio.wait_for(sink.arrived.wait(), 30)  # the POST is in flight
        finally:
            await _kill(child)
        sink.released.set()
        sink.default = 200
        app = make_app(sqlite_url, outbox_enabled=True, broker_url=broker,
                       outbox_options={"request_timeout": 1.0, "poll_interval": 0.5})
        await app.initialize()
        await wait_until(lambda: _all_published(app, 1), "the event to be relayed again",
                         timeout=30)
    ids = [event_id for event_id, _, _ in sink.deliveries]
    assert len(ids) == 2 and ids[0] == ids[1]  # at least once, with the same CloudEvent id
