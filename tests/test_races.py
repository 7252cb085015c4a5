"""Races forced in order (Sequencer, a held writer, a mock clock): nothing waits for the sweep.

Each test sets up the interleaving it names and checks the outcome from the
database. The nodes run with a recovery interval longer than the tests, so a
message left for the sweep would fail them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from edda import (
    EddaApp,
    WorkflowCancelledException,
    WorkflowContext,
    activity,
    publish,
    receive,
    send_event,
    subscribe,
    wait_event,
    workflow,
)
from edda.testing import MockClock
from tests.support.gates import Gate, settle, wait_for, wait_until
from tests.support.holds import WriterHold
from tests.support.sequencer import Sequencer
from tests.test_workflows import GATES, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


@workflow
async def inbox_reader(ctx: WorkflowContext) -> Any:
    await subscribe(ctx, "race.inbox", mode="broadcast")
    return (await receive(ctx, "race.inbox")).data


@workflow
async def event_reader(ctx: WorkflowContext) -> Any:
    return (await wait_event(ctx, "race.event")).data


async def _arrive(app: EddaApp, kind: str) -> None:
    if kind == "message":
        await publish(app, "race.inbox", {"n": 1})
    else:
        await send_event("race.event", "test", {"n": 1})


@pytest.mark.parametrize("kind", ["message", "event"])
async def test_what_arrives_while_its_receiver_passivates_is_delivered_at_once(
    sqlite_url: str, make_app: MakeApp, kind: str
) -> None:
    clock = MockClock()
    app = make_app(sqlite_url, clock=clock, idle_seconds=10.0, lease_seconds=60.0)
    await app.initialize()
    instance_id = await (inbox_reader if kind == "message" else event_reader).start()
    seq = Sequencer()
    hold = WriterHold(app)

    async def queued(n: int) -> bool:
        return hold.queued() >= n

    async def passivation() -> None:
        async with seq(0):
            await hold.start()
            clock.advance(11)  # idle for longer than idle_seconds: the actor gives it up
            await wait_until(lambda: queued(1), "the release to wait behind the hold")

    async def arrival() -> None:
        async with seq(1):  # arrives while the release is in flight
            sent = asyncio.create_task(_arrive(app, kind))
            await wait_until(lambda: queued(2), "the arrival to wait behind the release")
        async with seq(3):
            await sent

    async def commit() -> None:
        async with seq(2):
            hold.release()

    await asyncio.gather(passivation(), arrival(), commit())
    assert await app.wait_result(instance_id, timeout=5) == {"n": 1}
    inst = await app.get_instance(instance_id)
    assert inst is not None and inst["epoch"] == 2, "it was given up, then claimed again"


@activity
async def undo_nothing(ctx: WorkflowContext) -> None:
    return None


@workflow
async def racing_wf(ctx: WorkflowContext, key: str) -> str:
    return await gate(ctx, key)


async def _racing(app: EddaApp, key: str) -> tuple[asyncio.Task[str], str]:
    GATES[key] = Gate()
    started = asyncio.create_task(racing_wf.start(key=key))
    await wait_for(GATES[key].reached)
    (inst,) = (await app.find_instances(input_filters={"key": key}))["instances"]
    return started, inst["instance_id"]


async def _ended(app: EddaApp, instance_id: str) -> str:
    try:
        await app.wait_result(instance_id, timeout=10)
    except WorkflowCancelledException:
        pass
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return str(inst["status"])


async def test_a_cancel_committed_before_the_last_step_ends_wins(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    started, instance_id = await _racing(app, "race-cancel-first")
    answer = await app.cancel_workflow(instance_id, "ops")
    GATES["race-cancel-first"].open()  # the step in flight finishes after the cancel
    assert answer.accepted
    assert await _ended(app, instance_id) == "cancelled"
    assert isinstance(await settle(started), WorkflowCancelledException)


async def test_a_cancel_still_committing_when_the_workflow_returns_decides_first(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    started, instance_id = await _racing(app, "race-committing")
    seq = Sequencer()
    hold = WriterHold(app)

    async def queued(n: int) -> bool:
        return hold.queued() >= n

    async def canceller() -> bool:
        async with seq(0):
            await hold.start()
            answer = asyncio.create_task(app.cancel_workflow(instance_id, "ops"))
            await wait_until(lambda: queued(1), "the cancel request to wait behind the hold")
        async with seq(3):
            return bool((await answer).accepted)

    async def workflow_returns() -> None:
        async with seq(1):
            GATES["race-committing"].open()  # the body returns while the cancel commits
            await wait_until(lambda: queued(2), "the step's result to queue")

    async def commit() -> None:
        async with seq(2):
            hold.release()

    accepted, _, _ = await asyncio.gather(canceller(), workflow_returns(), commit())
    assert accepted
    assert await _ended(app, instance_id) == "cancelled"
    assert isinstance(await settle(started), WorkflowCancelledException)


async def test_a_cancel_after_the_workflow_started_finishing_is_refused(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    started, instance_id = await _racing(app, "race-finishing")
    hold = WriterHold(app)
    await hold.start()
    GATES["race-finishing"].open()

    async def completion_queued() -> bool:  # the step's result and WorkflowCompleted
        return hold.queued() >= 2

    await wait_until(completion_queued, "the completion to wait behind the hold")
    answer = asyncio.create_task(app.cancel_workflow(instance_id, "ops"))
    hold.release()
    outcome = await answer
    assert not outcome.accepted and "already ending" in outcome.reason
    assert await _ended(app, instance_id) == "completed"
    assert await started == instance_id
