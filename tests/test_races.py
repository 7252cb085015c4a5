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
    assert app._runner.passivated == 1, "it was given up, then claimed again"
    assert inst is not None and inst["epoch"] == 1, "by the same owner, at the same epoch"


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


@workflow
async def long_waiter(ctx: WorkflowContext) -> Any:
    return (await wait_event(ctx, "race.late")).data


async def _status_is(app: EddaApp, instance_id: str, status: str) -> bool:
    inst = await app.get_instance(instance_id)
    return inst is not None and inst["status"] == status


async def test_a_cancel_committed_while_the_actor_reads_its_journal_is_not_lost(
    sqlite_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = MockClock()
    app = make_app(sqlite_url, clock=clock, idle_seconds=10.0, lease_seconds=60.0)
    await app.initialize()
    instance_id = await long_waiter.start()
    clock.advance(11)  # it passivates

    async def passivated() -> bool:
        return not app.supervisor.is_running(instance_id)

    await wait_until(passivated, "the instance to leave memory")
    journal = app.stores.journal
    read, go = asyncio.Event(), asyncio.Event()
    real_activation = journal.activation

    async def held_activation(iid: str) -> Any:  # widen the window the race needs
        found = await real_activation(iid)
        read.set()
        await go.wait()
        return found

    monkeypatch.setattr(journal, "activation", held_activation)
    activating = asyncio.create_task(app._runner.activate_idle(instance_id))
    await wait_for(read)  # the actor has read its row: no cancel there yet
    answer = await app.cancel_workflow(instance_id, "ops")  # not resident: the durable path
    go.set()
    await activating
    assert answer.accepted
    with pytest.raises(WorkflowCancelledException):
        await app.wait_result(instance_id, timeout=10)
    await send_event("race.late", "test", {"n": 1})  # too late: it was cancelled
    assert await _status_is(app, instance_id, "cancelled")


async def test_a_cancel_whose_actor_stops_while_it_commits_still_gets_its_answer(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url, lease_seconds=60.0)
    await app.initialize()
    instance_id = await long_waiter.start()
    hold = WriterHold(app)
    await hold.start()
    answer = asyncio.create_task(app.cancel_workflow(instance_id, "ops"))

    async def queued() -> bool:
        return hold.queued() >= 1

    await wait_until(queued, "the cancel request to wait behind the hold")
    await app.supervisor.stop_all()  # what a lost lease does: its actor stops
    hold.release()
    outcome = await asyncio.wait_for(answer, 10)
    assert outcome.accepted, "the request committed, and the caller is told so"
    assert (await app.stores.journal.row(instance_id))["cancel_request"] is not None  # type: ignore[index]


@activity
async def parallel_step(ctx: WorkflowContext, n: int) -> int:
    return n


OPEN = asyncio.Event()


@workflow
async def parallel_wf(ctx: WorkflowContext) -> Any:
    await parallel_step(ctx, 0)
    await OPEN.wait()  # not durable: holds the body between two steps
    return await asyncio.gather(parallel_step(ctx, 1), parallel_step(ctx, 2),
                                return_exceptions=True)


async def test_parallel_activities_both_wait_for_a_cancel_being_committed(
    sqlite_url: str, make_app: MakeApp
) -> None:
    OPEN.clear()
    app = make_app(sqlite_url, lease_seconds=60.0)
    await app.initialize()
    started = asyncio.create_task(parallel_wf.start())

    async def at_the_pause() -> bool:
        return bool((await app.find_instances(workflow_name="parallel_wf"))["instances"]) \
            and bool(app._runner.resident)

    await wait_until(at_the_pause, "the workflow to pause between its steps")
    (instance_id,) = app._runner.resident
    actor = app._runner.resident[instance_id]
    hold = WriterHold(app)
    await hold.start()
    answer = asyncio.create_task(app.cancel_workflow(instance_id, "ops"))

    async def committing() -> bool:
        return actor.committing_cancel and hold.queued() >= 1

    await wait_until(committing, "the cancel to be committing")
    OPEN.set()  # both activities now start and must wait for that commit

    async def both_waiting() -> bool:
        event = actor._committing
        return event is not None and len(getattr(event, "_waiters", ())) == 2

    await wait_until(both_waiting, "both activities to wait for the commit")
    hold.release()
    assert (await answer).accepted
    assert isinstance(await settle(started), WorkflowCancelledException)
    assert await _status_is(app, instance_id, "cancelled")
