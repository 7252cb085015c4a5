"""Durable timers and CloudEvents through the public API (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from edda import (
    EddaApp,
    EventTimeoutError,
    HooksBase,
    ReceivedEvent,
    WorkflowContext,
    send_event,
    sleep,
    sleep_until,
    wait_event,
    workflow,
)
from edda.journal.writes import apply_all
from edda.testing import is_resident, sweep_now
from tests.support.gates import finished, wait_until
from tests.test_workflows import add

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


async def _status(app: EddaApp, instance_id: str) -> str:
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return str(inst["status"])


@workflow
async def napper(ctx: WorkflowContext, seconds: float) -> float:
    started = time.time()
    await sleep(ctx, seconds)
    return time.time() - started


async def test_sleep_suspends_start_and_resumes(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    iid = await napper.start(seconds=0.3)
    assert await _status(app, iid) == "waiting_for_timer"
    inst = await finished(app, iid)
    assert inst["status"] == "completed" and inst["output_data"]["result"] >= 0.3
    kinds = [h["event_type"] for h in await app.get_history(iid)]
    assert kinds == ["WorkflowStarted", "WaitStarted", "TimerExpired", "WorkflowCompleted"]


async def test_sleep_until_and_aliases(sqlite_url: str, make_app: MakeApp) -> None:
    from edda import wait_timer, wait_until

    assert wait_timer is sleep and wait_until is sleep_until

    @workflow
    async def until_wf(ctx: WorkflowContext, at: datetime) -> str:
        await sleep_until(ctx, at, timer_id="the-deadline")
        return "woke"

    app = make_app(sqlite_url)
    await app.initialize()
    iid = await until_wf.start(at=datetime.now(UTC) + timedelta(seconds=0.2))
    assert (await finished(app, iid))["output_data"] == {"result": "woke"}
    assert [h["activity_id"] for h in await app.get_history(iid)][1:3] == ["the-deadline"] * 2


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda ctx: sleep(ctx, -1), ValueError, ">= 0"),
        (lambda ctx: sleep(ctx, "5"), TypeError, "number of seconds"),
        (lambda ctx: sleep(ctx, float("nan")), ValueError, "finite"),
        (lambda ctx: sleep_until(ctx, datetime(2030, 1, 1)), ValueError, "timezone-aware"),
        (lambda ctx: sleep_until(ctx, "tomorrow"), TypeError, "datetime"),
        (lambda ctx: wait_event(ctx, ""), ValueError, "non-empty"),
        (lambda ctx: wait_event(ctx, 42), TypeError, "string"),
        (lambda ctx: wait_event(ctx, "x", timeout_seconds=-2), ValueError, ">= 0"),
    ],
)
async def test_bad_wait_arguments_are_clear_errors(
    sqlite_url: str, make_app: MakeApp, call: Callable[[WorkflowContext], Any],
    error: type[Exception], message: str,
) -> None:
    @workflow
    async def bad_wait_wf(ctx: WorkflowContext) -> str:
        try:
            await call(ctx)
        except error as exc:
            return str(exc)
        return "no error"

    app = make_app(sqlite_url)
    await app.initialize()
    iid = await bad_wait_wf.start()
    inst = await app.get_instance(iid)
    assert inst is not None and message in inst["output_data"]["result"]
    assert [h["event_type"] for h in await app.get_history(iid)] == [
        "WorkflowStarted", "WorkflowCompleted"], "a rejected wait writes nothing"


class Payment(pydantic.BaseModel):
    amount: float
    currency: str


@workflow
async def pay_waiter(ctx: WorkflowContext, strict: bool = False) -> dict[str, Any]:
    await add(ctx, 1, 1)
    if strict:
        try:
            event = await wait_event(ctx, "payment.done", model=Payment)
        except pydantic.ValidationError as exc:
            return {"invalid": exc.error_count()}
        assert isinstance(event.data, Payment)
        return {"amount": event.data.amount}
    event = await wait_event(ctx, "payment.done")
    assert isinstance(event, ReceivedEvent)
    return {"data": event.data, "source": event.source, "id": event.id,
            "subject": event.subject, "extensions": event.extensions, "type": event.type}


async def test_event_reaches_every_waiter(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    ids = [await pay_waiter.start() for _ in range(20)]
    assert {await _status(app, i) for i in ids} == {"waiting_for_message"}
    await app.handle_cloudevent({"type": "payment.done", "source": "bank", "id": "ev-1",
                                 "subject": "order-9", "data": {"amount": 12.5},
                                 "Region": "eu"})
    for iid in ids:
        inst = await finished(app, iid)
        assert inst["output_data"]["result"] == {
            "data": {"amount": 12.5}, "source": "bank", "id": "ev-1", "subject": "order-9",
            "extensions": {"region": "eu"}, "type": "payment.done"}


async def test_targeted_event_reaches_only_its_instance(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    first, second = await pay_waiter.start(), await pay_waiter.start()
    await send_event("payment.done", "bank", {"to": "first"},
                     extensions={"eddainstanceid": first})
    assert (await finished(app, first))["output_data"]["result"]["data"] == {"to": "first"}
    assert await _status(app, second) == "waiting_for_message"
    await send_event("payment.done", "bank", {"to": "everyone"})
    assert (await finished(app, second))["output_data"]["result"]["data"] == {"to": "everyone"}


async def test_event_sent_before_the_wait_is_not_missed(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    await send_event("early.bird", "test", {"n": 0})  # before the workflow exists

    @workflow
    async def late_waiter(ctx: WorkflowContext) -> list[Any]:
        await send_event("early.bird", "self", {"n": 1})  # after start, before the wait
        got = [(await wait_event(ctx, "early.bird")).data]
        try:
            await wait_event(ctx, "early.bird", timeout_seconds=0.2)
        except EventTimeoutError:
            got.append("no more")
        return got

    iid = await late_waiter.start()
    assert (await finished(app, iid))["output_data"]["result"] == [{"n": 1}, "no more"]


async def test_timeout_is_catchable_and_is_a_timeout_error(
    sqlite_url: str, make_app: MakeApp
) -> None:
    @workflow
    async def patient(ctx: WorkflowContext) -> list[str]:
        caught = []
        try:
            await wait_event(ctx, "never.comes", timeout_seconds=0.1)
        except TimeoutError as exc:
            caught.append(f"{type(exc).__name__}: {exc}")
        await add(ctx, 2, 3)
        return caught

    app = make_app(sqlite_url)
    await app.initialize()
    iid = await patient.start()
    inst = await finished(app, iid)
    assert inst["output_data"]["result"] == [
        "EventTimeoutError: Event 'never.comes' did not arrive within 0.1 seconds"]
    assert issubclass(EventTimeoutError, TimeoutError)


async def test_model_validation_error_is_catchable_and_others_still_receive(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    strict, lenient = await pay_waiter.start(strict=True), await pay_waiter.start()
    await send_event("payment.done", "bank", {"amount": "lots"})
    assert (await finished(app, strict))["output_data"]["result"] == {"invalid": 2}
    assert (await finished(app, lenient))["output_data"]["result"]["data"] == {"amount": "lots"}
    again = await pay_waiter.start(strict=True)
    await send_event("payment.done", "bank", {"amount": 3, "currency": "EUR"})
    assert (await finished(app, again))["output_data"]["result"] == {"amount": 3.0}


async def test_suspension_cannot_be_swallowed(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def swallower(ctx: WorkflowContext) -> str:
        try:
            await sleep(ctx, 0.2)
        except Exception:
            return "swallowed"
        try:
            await wait_event(ctx, "go.on")
        except Exception:
            return "swallowed"
        return "suspended properly"

    app = make_app(sqlite_url, idle_seconds=0)  # passivate at once: cancellation in the wait
    await app.initialize()
    iid = await swallower.start()

    async def waiting_for_event() -> bool:
        return await _status(app, iid) == "waiting_for_message"

    await wait_until(waiting_for_event, "the workflow to reach wait_event")
    await send_event("go.on", "test", {})
    assert (await finished(app, iid))["output_data"] == {"result": "suspended properly"}
    assert app._runner.passivated >= 2


async def test_passivated_instance_holds_no_owner_and_wakes_on_event(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url, idle_seconds=0.05)
    await app.initialize()
    iid = await pay_waiter.start()

    async def passivated() -> bool:
        row = await app.stores.journal.row(iid)
        return row is not None and row["owner_node"] is None and not is_resident(app, iid)

    await wait_until(passivated, "the waiting instance to be passivated")
    await send_event("payment.done", "bank", {"late": True})
    inst = await finished(app, iid)
    assert inst["output_data"]["result"]["data"] == {"late": True}
    # Its partition stayed with this node: reactivated at the same epoch.
    assert inst["locked_by"] == app.worker_id and inst["epoch"] == 1


async def test_timer_due_while_down_fires_on_start(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await napper.start(seconds=0.2)
    deadline = time.time() + 0.2
    await app.shutdown()

    async def past_due() -> bool:
        return time.time() > deadline + 0.05

    await wait_until(past_due, "the timer to fall due while no node runs")
    app2 = make_app(sqlite_url)
    restarted = time.perf_counter()
    await app2.initialize()
    inst = await finished(app2, iid)
    assert inst["status"] == "completed"
    assert time.perf_counter() - restarted < 2.0


async def test_event_hooks_fire(sqlite_url: str, make_app: MakeApp) -> None:
    seen: list[tuple[str, Any]] = []

    class Recorder(HooksBase):
        async def on_event_sent(self, event_type: str, event_source: str,
                                event_data: dict[str, Any]) -> None:
            seen.append(("sent", event_type))

        async def on_event_received(self, instance_id: str, event_type: str,
                                    event_data: dict[str, Any]) -> None:
            seen.append(("received", event_data))

    app = make_app(sqlite_url, hooks=Recorder())
    await app.initialize()
    iid = await pay_waiter.start()
    await send_event("payment.done", "bank", {"k": 1})
    await finished(app, iid)
    assert seen == [("sent", "payment.done"), ("received", {"k": 1})]


@pytest.mark.parametrize("event", [
    {"source": "x"}, {"type": "", "source": "x"}, {"type": "t"}, {"type": "t", "source": " "},
    "not an event",
])
async def test_malformed_cloudevent_is_rejected_and_stores_nothing(
    sqlite_url: str, make_app: MakeApp, event: Any
) -> None:
    import sqlalchemy as sa

    from edda.journal import schema

    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(ValueError, match="CloudEvent"):
        await app.handle_cloudevent(event)
    async with app.database.reader.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(schema.events))).scalar()
    assert count == 0


async def test_binary_event_data_round_trips(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def bytes_waiter(ctx: WorkflowContext) -> str:
        event = await wait_event(ctx, "blob")
        return event.data["_binary"].hex()

    app = make_app(sqlite_url)
    await app.initialize()
    iid = await bytes_waiter.start()
    await app.handle_cloudevent({"type": "blob", "source": "s", "data": bytes(range(256))})
    assert (await finished(app, iid))["output_data"]["result"] == bytes(range(256)).hex()


async def test_sweep_delivers_an_event_whose_wake_up_was_lost(
    sqlite_url: str, make_app: MakeApp
) -> None:
    from edda.journal.waits import StoreEvent

    app = make_app(sqlite_url, idle_seconds=0.05)
    await app.initialize()
    iid = await pay_waiter.start()

    async def passivated() -> bool:
        row = await app.stores.journal.row(iid)
        return row is not None and row["owner_node"] is None

    await wait_until(passivated, "the waiting instance to be passivated")
    # Store an event the way handle_cloudevent does, but lose its wake-up message.
    await apply_all(app.database, [StoreEvent("payment.done", {"type": "payment.done",
                                                               "source": "lost", "data": {"n": 1}},
                                              None, None)])
    assert await _status(app, iid) == "waiting_for_message"
    await sweep_now(app)
    assert (await finished(app, iid))["output_data"]["result"]["data"] == {"n": 1}
