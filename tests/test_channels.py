"""Channels through the public API: competing, broadcast, direct, recur, retention."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from edda import (
    ChannelMessage,
    ChannelModeConflictError,
    ChannelNotSubscribedError,
    EddaApp,
    WorkflowContext,
    activity,
    publish,
    receive,
    send_to,
    subscribe,
    unsubscribe,
    workflow,
)
from edda.journal import schema
from edda.testing import sweep_now
from tests.support.gates import finished, interrupt_and_restart, wait_for, wait_until
from tests.test_workflows import GATES, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
HANDLED: Counter[int] = Counter()


async def _count(app: EddaApp, table: sa.Table) -> int:
    async with app.database.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
                   or 0)


@activity
async def handle_job(ctx: WorkflowContext, n: int) -> int:
    HANDLED[n] += 1
    return n


@workflow
async def job_worker(ctx: WorkflowContext, done: int = 0, recur_every: int = 0) -> int:
    await subscribe(ctx, "jobs", mode="competing")
    while True:
        message = await receive(ctx, "jobs")
        if message.data.get("stop"):
            return done
        await handle_job(ctx, message.data["n"])
        done += 1
        if recur_every and done % recur_every == 0:
            await ctx.recur(done=done, recur_every=recur_every)


async def test_competing_each_message_to_exactly_one_of_20(db_url: str, make_app: MakeApp) -> None:
    HANDLED.clear()
    app = make_app(db_url)
    await app.initialize()
    workers = [await job_worker.start() for _ in range(20)]
    for n in range(2000):
        await publish(app, "jobs", {"n": n})
    for _ in workers:
        await publish(app, "jobs", {"stop": True})
    done = [(await finished(app, w, 120))["output_data"]["result"] for w in workers]
    assert sum(done) == 2000
    assert HANDLED == Counter(range(2000)), "every job handled once, none twice"
    assert sum(1 for d in done if d > 0) > 1, "the work was shared"
    assert await _count(app, schema.channel_messages) == 0, "consumed messages are deleted"


async def test_messages_queued_before_any_subscriber_are_not_lost(
    sqlite_url: str, make_app: MakeApp
) -> None:
    HANDLED.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    for n in range(5):
        await publish(app, "jobs", {"n": n})
    await publish(app, "jobs", {"stop": True})
    worker = await job_worker.start()
    assert (await finished(app, worker, timeout=30.0))["output_data"]["result"] == 5
    assert HANDLED == Counter(range(5))


@workflow
async def news_reader(ctx: WorkflowContext, count: int) -> list[Any]:
    await subscribe(ctx, "news")
    got = []
    for _ in range(count):
        message = await receive(ctx, "news")
        assert isinstance(message, ChannelMessage) and message.channel == "news"
        got.append(message.data.hex() if isinstance(message.data, bytes) else message.data)
    return got


async def test_broadcast_every_subscriber_every_message_in_order(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    await app.initialize()
    await publish(app, "news", {"n": "before anyone subscribed"})
    readers = [await news_reader.start(count=20) for _ in range(50)]
    sent = [{"n": n} for n in range(19)]
    for data in sent:
        await publish(app, "news", data)
    await publish(app, "news", bytes(range(256)))
    expected = [*sent, bytes(range(256)).hex()]
    for reader in readers:
        assert (await finished(app, reader, 60))["output_data"]["result"] == expected


@workflow
async def mailbox(ctx: WorkflowContext, count: int) -> list[Any]:
    await gate(ctx, f"mailbox-{count}")
    await subscribe(ctx, "inbox", mode="direct")
    got = []
    for _ in range(count):
        message = await receive(ctx, "inbox")
        got.append([message.data, message.metadata["source_instance_id"]])
    return got


@workflow
async def sender(ctx: WorkflowContext, to: str, data: dict[str, Any]) -> bool:
    return await send_to(ctx, to, data, channel="inbox")


async def test_direct_messages_reach_the_instance_even_before_it_subscribes(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    from tests.support.gates import Gate

    GATES["mailbox-2"] = Gate()
    starting = asyncio.create_task(mailbox.start(count=2))
    await wait_for(GATES["mailbox-2"].reached)

    async def created() -> bool:
        return bool((await app.find_instances(workflow_name="mailbox"))["instances"])

    await wait_until(created, "the mailbox instance to be committed")
    target = (await app.find_instances(workflow_name="mailbox"))["instances"][0]["instance_id"]
    first = await sender.start(to=target, data={"k": 1})  # target not subscribed yet
    inst = await app.get_instance(first)
    assert inst is not None and inst["output_data"] == {"result": False}
    GATES["mailbox-2"].open()

    async def subscribed() -> bool:
        return await _count(app, schema.subscriptions) == 1

    await wait_until(subscribed, "the mailbox to subscribe")
    second = await sender.start(to=target, data={"k": 2})
    assert (await app.get_instance(second))["output_data"] == {"result": True}  # type: ignore[index]
    assert await starting == target
    result = (await finished(app, target, timeout=30.0))["output_data"]["result"]
    assert result == [[{"k": 1}, first], [{"k": 2}, second]]
    # A direct message has one receiver: once received it is gone, not kept for retention.
    assert await _count(app, schema.channel_messages) == 0
    assert await _count(app, schema.channel_deliveries) == 0
    del GATES["mailbox-2"]


async def test_receive_timeout_and_unsubscribed_receive(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def impatient(ctx: WorkflowContext) -> list[str]:
        out = []
        try:
            await receive(ctx, "quiet")
        except ChannelNotSubscribedError as exc:
            out.append(type(exc).__name__)
        await subscribe(ctx, "quiet")
        try:
            await receive(ctx, "quiet", timeout_seconds=0.1)
        except TimeoutError as exc:
            out.append(str(exc))
        await unsubscribe(ctx, "quiet")
        return out

    app = make_app(sqlite_url)
    await app.initialize()
    iid = await impatient.start()
    assert (await finished(app, iid, timeout=30.0))["output_data"]["result"] == [
        "ChannelNotSubscribedError", "Message on channel 'quiet' did not arrive within timeout"]
    assert await _count(app, schema.subscriptions) == 0


async def test_mode_conflict_and_release_on_completion(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def mode_user(ctx: WorkflowContext, mode: str, hold: bool) -> str:
        try:
            await subscribe(ctx, "shared", mode=mode)
        except ChannelModeConflictError as exc:
            return str(exc)
        if hold:
            await receive(ctx, "shared")
        return "subscribed"

    app = make_app(sqlite_url)
    await app.initialize()
    holder = await mode_user.start(mode="competing", hold=True)
    clash = await mode_user.start(mode="broadcast", hold=False)
    assert (await finished(app, clash, timeout=30.0))["output_data"]["result"] == (
        "Channel 'shared' is already configured as 'competing' mode. "
        "Cannot subscribe with 'broadcast' mode.")
    await publish(app, "shared", {"go": 1})
    await finished(app, holder, timeout=30.0)
    later = await mode_user.start(mode="broadcast", hold=False)
    assert (await finished(app, later, timeout=30.0))["output_data"]["result"] == "subscribed", \
        "a finished instance no longer holds the channel's mode"
    with pytest.raises(ValueError, match="Invalid subscription mode"):
        await mode_user.start(mode="fanout", hold=False)


@workflow
async def announcer(ctx: WorkflowContext) -> str:
    message_id = await publish(ctx, "announcements", {"hello": "world"})
    await gate(ctx, "announcer")
    return message_id


async def test_publish_in_a_workflow_is_not_repeated_on_replay(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "announcer",
                                          announcer.start)
    found = (await app2.find_instances(workflow_name="announcer"))["instances"]
    result = (await finished(app2, found[0]["instance_id"], timeout=30.0))["output_data"]["result"]
    async with app2.database.read() as conn:
        rows = (await conn.execute(sa.select(schema.channel_messages.c.message_id))).all()
    assert [r.message_id for r in rows] == [result], "published once, same id after replay"


async def test_binary_payload_survives_replay(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def byte_reader(ctx: WorkflowContext) -> str:
        await subscribe(ctx, "blobs")
        message = await receive(ctx, "blobs")
        await gate(ctx, "bytes")
        assert isinstance(message.data, bytes)
        return message.data.hex()

    async def start_and_feed() -> str:
        task = asyncio.create_task(byte_reader.start())
        await asyncio.sleep(0)
        return await task

    from edda.runtime.registry import current_app

    async def run() -> object:
        iid = await byte_reader.start()
        app = current_app()
        assert app is not None
        await publish(app, "blobs", bytes(range(256)))
        return iid

    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "bytes", run)
    found = (await app2.find_instances(workflow_name="byte_reader"))["instances"]
    result = (await finished(app2, found[0]["instance_id"], timeout=30.0))["output_data"]["result"]
    assert result == bytes(range(256)).hex()


async def test_worker_recurring_500_times_keeps_a_short_journal(
    sqlite_url: str, make_app: MakeApp
) -> None:
    HANDLED.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    first = await job_worker.start(recur_every=1)
    for n in range(500):
        await publish(app, "jobs", {"n": n})
    await publish(app, "jobs", {"stop": True})

    async def worker_done() -> bool:
        found = await app.find_instances(workflow_name="job_worker", status="completed")
        return bool(found["instances"])

    await wait_until(worker_done, "the recurring worker to finish", 120)
    final = (await app.find_instances(workflow_name="job_worker", status="completed"))
    last = final["instances"][0]
    assert last["output_data"] == {"result": 500}
    assert HANDLED == Counter(range(500)), "no job lost or repeated across 500 recurs"
    history = await app.get_history(last["instance_id"])
    assert len(history) <= 6, history
    recurred = await app.find_instances(workflow_name="job_worker", status="recurred", limit=1000)
    assert len(recurred["instances"]) == 500
    assert (await app.get_instance(first))["status"] == "recurred"  # type: ignore[index]
    assert await _count(app, schema.journal_archive) > 500


@workflow
async def slow_reader(ctx: WorkflowContext) -> Any:
    await subscribe(ctx, "digest")
    await gate(ctx, "slow-reader")  # busy: what is published now is owed to it
    return (await receive(ctx, "digest")).data


async def test_retention_keeps_what_is_owed(sqlite_url: str, make_app: MakeApp) -> None:
    from tests.support.gates import Gate

    app = make_app(sqlite_url, message_retention_days=0)
    await app.initialize()
    await publish(app, "digest", {"n": 0})  # nobody subscribes: expired, purged
    GATES["slow-reader"] = Gate()
    starting = asyncio.create_task(slow_reader.start())
    await wait_for(GATES["slow-reader"].reached)

    async def subscribed() -> bool:
        return await _count(app, schema.subscriptions) == 1

    await wait_until(subscribed, "the reader to subscribe")
    await publish(app, "digest", {"n": 1})
    await sweep_now(app)
    assert await _count(app, schema.channel_messages) == 1, "still owed to the reader"
    GATES["slow-reader"].open()
    iid = await starting
    assert (await finished(app, iid, timeout=30.0))["output_data"]["result"] == {"n": 1}
    await sweep_now(app)
    assert await _count(app, schema.channel_messages) == 0, "received by everyone: purged"
    del GATES["slow-reader"]
