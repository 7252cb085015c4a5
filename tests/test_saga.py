"""Saga compensation and cancellation through the public API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from edda import (
    EddaApp,
    HooksBase,
    RetryPolicy,
    TerminalError,
    Workflow,
    WorkflowCancelledException,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    register_compensation,
    wait_event,
    workflow,
)
from edda.journal.entries import (
    ActivityCompleted,
    ActivityFailed,
    BodyEnded,
    CompensationDone,
    CompensationsStarted,
    WorkflowCancelling,
)
from edda.journal.store import read_journal
from tests.support.gates import Gate, finished, interrupt_and_restart, wait_for, wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
FAST = RetryPolicy(initial_interval=0.001, max_interval=0.01, max_attempts=3)

#: What compensations did, in order: (function, what it received).
UNDONE: list[tuple[str, Any]] = []
#: Activities that ran, in order.
DONE: list[str] = []
GATES: dict[str, Gate] = {}


async def _status(app: EddaApp, instance_id: str, *statuses: str,
                  timeout: float = 20.0) -> dict[str, Any]:
    async def reached() -> bool:
        inst = await app.get_instance(instance_id)
        return inst is not None and inst["status"] in statuses

    await wait_until(reached, f"{instance_id} to become {statuses}", timeout)
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return inst


# -- the README's example, as written ----------------------------------------------

@compensation
async def cancel_reservation(ctx: WorkflowContext, item_id: str) -> dict[str, bool]:
    UNDONE.append(("cancel_reservation", item_id))
    return {"cancelled": True}


@activity
@on_failure(cancel_reservation)
async def reserve_inventory(ctx: WorkflowContext, item_id: str) -> dict[str, bool]:
    DONE.append(f"reserve {item_id}")
    return {"reserved": True}


@activity
async def charge_payment(ctx: WorkflowContext, fail: bool = True) -> None:
    DONE.append("charge")
    if fail:
        raise TerminalError("card declined")


@workflow
async def order_workflow(ctx: WorkflowContext, item1: str, item2: str, fail: bool = True) -> str:
    await reserve_inventory(ctx, item1)
    await reserve_inventory(ctx, item2)
    await charge_payment(ctx, fail)
    return "ok"


async def test_failure_compensates_newest_first_then_fails(db_url: str,
                                                           make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    UNDONE.clear()
    with pytest.raises(TerminalError, match="card declined"):
        await order_workflow.start(item1="apple", item2="pear")
    assert UNDONE == [("cancel_reservation", "pear"), ("cancel_reservation", "apple")]
    found = await app.find_instances(workflow_name="order_workflow", status="failed")
    inst = found["instances"][0]
    assert inst["output_data"]["error_type"] == "TerminalError"
    assert "failed_compensations" not in inst["output_data"]
    journal = await read_journal(app.database, inst["instance_id"])
    kinds = [type(r.entry).__name__ for r in journal]
    assert kinds[-4:] == ["CompensationsStarted", "CompensationDone", "CompensationDone",
                          "WorkflowFailed"]
    history = await app.get_history(inst["instance_id"])
    assert [h["event_type"] for h in history if "Compensation" in h["event_type"]] == [
        "CompensationsStarted", "CompensationExecuted", "CompensationExecuted"]

    UNDONE.clear()  # success: nothing is compensated
    done = await order_workflow.start(item1="fig", item2="kiwi", fail=False)
    assert UNDONE == []
    assert (await app.get_instance(done))["status"] == "completed"  # type: ignore[index]


# -- what an @on_failure compensation receives -------------------------------------

@compensation
async def release_with_result(ctx: WorkflowContext, sku: str, quantity: int,
                              result: dict[str, Any]) -> None:
    UNDONE.append(("release_with_result", (sku, quantity, result["hold"])))


@compensation
async def release_by_result_key(ctx: WorkflowContext, hold: str) -> None:
    UNDONE.append(("release_by_result_key", hold))


@compensation
def release_positionally(ctx: WorkflowContext, first: str, second: int) -> None:
    UNDONE.append(("release_positionally", (first, second)))


@activity
@on_failure(release_with_result)
async def hold_a(ctx: WorkflowContext, sku: str, quantity: int = 2) -> dict[str, str]:
    return {"hold": f"h-{sku}"}


@on_failure(release_by_result_key)
@activity
async def hold_b(ctx: WorkflowContext, sku: str) -> dict[str, str]:
    return {"hold": f"b-{sku}"}


@activity
@on_failure(release_positionally)
def hold_c(ctx: WorkflowContext, sku: str, n: int) -> None:
    return None


@workflow
async def holds_wf(ctx: WorkflowContext) -> None:
    await hold_a(ctx, "x")
    await hold_b(ctx, sku="y")
    await hold_c(ctx, "z", 3)
    raise TerminalError("stop")


async def test_on_failure_compensation_receives_arguments_and_result(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    UNDONE.clear()
    with pytest.raises(TerminalError):
        await holds_wf.start()
    assert UNDONE == [
        ("release_positionally", ("z", 3)),  # names differ: the arguments as passed
        ("release_by_result_key", "b-y"),  # Edda's rule: a key of the dict result
        ("release_with_result", ("x", 2, "h-x")),  # by name, default applied, result
    ]


# -- failing compensations -----------------------------------------------------------

ATTEMPTS: dict[str, int] = {}


@compensation
async def flaky_undo(ctx: WorkflowContext, name: str) -> None:
    ATTEMPTS[name] = ATTEMPTS.get(name, 0) + 1
    if name == "broken" or ATTEMPTS[name] < 2:
        raise ConnectionError(f"undo {name} unavailable")
    UNDONE.append(("flaky_undo", name))


@workflow
async def failing_undo_wf(ctx: WorkflowContext) -> None:
    await register_compensation(ctx, flaky_undo, "first")
    await register_compensation(ctx, flaky_undo, "broken")
    await register_compensation(ctx, flaky_undo, "last")
    raise ValueError("the workflow broke")


async def test_a_failing_compensation_is_retried_recorded_and_the_rest_still_run(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url, default_retry_policy=FAST)
    await app.initialize()
    UNDONE.clear()
    ATTEMPTS.clear()
    with pytest.raises(ValueError, match="the workflow broke"):
        await failing_undo_wf.start()
    assert UNDONE == [("flaky_undo", "last"), ("flaky_undo", "first")]
    assert ATTEMPTS == {"last": 2, "broken": 3, "first": 2}
    inst = (await app.find_instances(workflow_name="failing_undo_wf"))["instances"][0]
    assert inst["status"] == "failed"
    assert inst["output_data"]["failed_compensations"] == ["flaky_undo:2"]
    journal = await read_journal(app.database, inst["instance_id"])
    outcomes = [(r.entry.registered_at, r.entry.attempts, r.entry.error is not None)
                for r in journal if isinstance(r.entry, CompensationDone)]
    assert outcomes == [("flaky_undo:3", 2, False), ("flaky_undo:2", 3, True),
                        ("flaky_undo:1", 2, False)]


# -- replay never registers or runs a compensation twice ---------------------------

@activity
async def hold_here(ctx: WorkflowContext, key: str) -> str:
    gate = GATES.get(key)
    if gate is not None:
        await gate.hold()
    return key


@workflow
async def register_then_fail_wf(ctx: WorkflowContext) -> None:
    await register_compensation(ctx, cancel_reservation, item_id="registered-in-body")
    await hold_here(ctx, "replay-gate")
    raise TerminalError("after the restart")


async def test_a_compensation_registered_in_the_body_runs_once_after_replay(
    sqlite_url: str, make_app: MakeApp
) -> None:
    UNDONE.clear()
    app, _first = await interrupt_and_restart(make_app, sqlite_url, GATES, "replay-gate",
                                             register_then_fail_wf.start)
    inst = (await app.find_instances(workflow_name="register_then_fail_wf"))["instances"][0]
    await _status(app, inst["instance_id"], "failed")
    assert UNDONE == [("cancel_reservation", "registered-in-body")]
    journal = await read_journal(app.database, inst["instance_id"])
    assert sum(type(r.entry).__name__ == "CompensationRegistered" for r in journal) == 1


# -- cancellation --------------------------------------------------------------------

class Cancelled(HooksBase):
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    async def on_workflow_cancelled(self, instance_id: str, workflow_name: str) -> None:
        self.cancelled.append(instance_id)


@workflow
async def waiting_order_wf(ctx: WorkflowContext, order: str) -> str:
    await reserve_inventory(ctx, f"{order}-a")
    await reserve_inventory(ctx, f"{order}-b")
    await wait_event(ctx, f"paid.{order}")
    await charge_payment(ctx, fail=False)
    return "paid"


@pytest.mark.parametrize("idle_seconds", [600.0, 0.0], ids=["resident", "passivated"])
async def test_cancel_while_waiting_compensates_and_records_who(
    db_url: str, make_app: MakeApp, idle_seconds: float
) -> None:
    hooks = Cancelled()
    app = make_app(db_url, hooks=hooks, idle_seconds=idle_seconds)
    await app.initialize()
    UNDONE.clear()
    DONE.clear()
    order = f"o{int(idle_seconds)}"
    instance_id = await waiting_order_wf.start(order=order)
    await _status(app, instance_id, "waiting_for_message")
    result = await app.cancel_workflow(instance_id, cancelled_by="ops")
    assert result and result.accepted and result == True  # noqa: E712 (Edda's bool)
    inst = await _status(app, instance_id, "cancelled")
    out = inst["output_data"]
    assert out["cancelled_by"] == "ops" and out["previous_status"] == "waiting_for_message"
    assert out["cancelled_at"].endswith("+00:00")
    assert UNDONE == [("cancel_reservation", f"{order}-b"), ("cancel_reservation", f"{order}-a")]
    assert "charge" not in DONE
    assert hooks.cancelled == [instance_id]
    # The event arrives too late: nothing more happens, and a second cancel is refused.
    await app.handle_cloudevent({"type": f"paid.{order}", "source": "test", "data": {}})
    again = await app.cancel_workflow(instance_id, cancelled_by="ops")
    assert not again and "cancelled" in again.reason
    assert "charge" not in DONE


@activity
@on_failure(cancel_reservation)
async def reserve_gated(ctx: WorkflowContext, item_id: str) -> str:
    DONE.append(f"reserve {item_id}")
    gate = GATES.get(item_id)
    if gate is not None:
        await gate.hold()
    return item_id


@workflow
async def gated_wf(ctx: WorkflowContext) -> str:
    await reserve_inventory(ctx, "g-1")
    await reserve_gated(ctx, "g-2")
    await reserve_inventory(ctx, "g-3")
    return "done"


async def test_cancel_during_an_activity_lets_it_finish_and_starts_no_other(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    UNDONE.clear()
    DONE.clear()
    GATES["g-2"] = Gate()
    starting = asyncio.create_task(gated_wf.start())
    await wait_for(GATES["g-2"].reached)
    inst = (await app.find_instances(workflow_name="gated_wf"))["instances"][0]
    assert await app.cancel_workflow(inst["instance_id"], cancelled_by="user")
    GATES["g-2"].open()
    with pytest.raises(WorkflowCancelledException):
        await starting
    final = await _status(app, inst["instance_id"], "cancelled")
    assert final["output_data"]["previous_status"] == "running"
    assert DONE == ["reserve g-1", "reserve g-2"]
    # The activity that was running finished, so it is compensated too.
    assert UNDONE == [("cancel_reservation", "g-2"), ("cancel_reservation", "g-1")]
    del GATES["g-2"]


async def test_cancel_of_unknown_or_finished_instances_says_why(sqlite_url: str,
                                                                make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    unknown = await app.cancel_workflow("nope-123")
    assert not unknown and unknown == False and "no workflow instance" in unknown.reason  # noqa: E712
    done = await order_workflow.start(item1="a", item2="b", fail=False)
    finished = await app.cancel_workflow(done)
    assert not finished and "already ended (completed)" in finished.reason
    with pytest.raises(ValueError, match="cancelled_by"):
        await app.cancel_workflow(done, cancelled_by="")


@compensation
async def slow_undo(ctx: WorkflowContext, name: str) -> None:
    gate = GATES.get(f"undo-{name}")
    if gate is not None:
        await gate.hold()
    UNDONE.append(("slow_undo", name))


@workflow
async def crash_while_compensating_wf(ctx: WorkflowContext) -> None:
    for name in ("one", "two", "three"):
        await register_compensation(ctx, slow_undo, name)
    await wait_event(ctx, "never.comes")


async def test_a_restart_while_compensating_a_cancel_resumes_without_redoing(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    UNDONE.clear()
    instance_id = await crash_while_compensating_wf.start()
    GATES["undo-two"] = Gate()
    assert await app.cancel_workflow(instance_id, cancelled_by="ops")
    await wait_for(GATES["undo-two"].reached)
    inst = await app.get_instance(instance_id)
    assert inst is not None and inst["status"] == "compensating"
    await app.shutdown()  # stops the actor inside compensation "two"
    del GATES["undo-two"]
    assert UNDONE == [("slow_undo", "three")]
    second = make_app(sqlite_url)
    await second.initialize()
    final = await _status(second, instance_id, "cancelled")
    assert final["output_data"]["cancelled_by"] == "ops"
    assert UNDONE == [("slow_undo", "three"), ("slow_undo", "two"), ("slow_undo", "one")]
    journal = await read_journal(second.database, instance_id)
    assert sum(isinstance(r.entry, WorkflowCancelling) for r in journal) == 1
    assert [r.entry.registered_at for r in journal if isinstance(r.entry, CompensationDone)] \
        == ["slow_undo:3", "slow_undo:2", "slow_undo:1"]
    assert not any(isinstance(r.entry, CompensationsStarted) for r in journal)


@compensation
async def undo_in_compensation(ctx: WorkflowContext) -> None:
    await reserve_inventory(ctx, "inside")


@workflow
async def bad_compensation_wf(ctx: WorkflowContext) -> None:
    await register_compensation(ctx, undo_in_compensation)
    raise TerminalError("fail")


async def test_a_compensation_cannot_make_durable_calls(sqlite_url: str,
                                                        make_app: MakeApp) -> None:
    app = make_app(sqlite_url, default_retry_policy=FAST)
    await app.initialize()
    with pytest.raises(TerminalError):
        await bad_compensation_wf.start()
    inst = (await app.find_instances(workflow_name="bad_compensation_wf"))["instances"][0]
    assert inst["output_data"]["failed_compensations"] == ["undo_in_compensation:1"]
    journal = await read_journal(app.database, inst["instance_id"])
    done = [r.entry for r in journal if isinstance(r.entry, CompensationDone)]
    assert done[0].error is not None and "cannot make durable calls" in done[0].error.message


@workflow
async def cancel_waits_for_payment(ctx: WorkflowContext) -> object:
    return (await wait_event(ctx, "cancel.payment")).data


async def test_a_cancelled_instance_never_shows_its_old_status_or_takes_its_event(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    await app.initialize()
    iid = await cancel_waits_for_payment.start()
    assert (await app.get_instance(iid) or {})["status"] == "waiting_for_message"
    assert await app.cancel_workflow(iid)
    # From the moment the cancel is accepted: on its way out, never waiting again.
    assert (await app.get_instance(iid) or {})["status"] in ("compensating", "cancelled")
    await app.handle_cloudevent({"type": "cancel.payment", "source": "/t", "id": "p-1",
                                 "specversion": "1.0", "data": {"paid": True}}, wait=True)
    inst = await finished(app, iid, statuses=("cancelled",))
    assert inst["output_data"]["previous_status"] == "waiting_for_message"


# -- the other branches of a gather when the body ends ------------------------------------

#: Attempts of `flaky_sibling`, counted by the test.
SIBLING_ATTEMPTS: list[int] = []


@activity
async def fail_when_open(ctx: WorkflowContext, gate: str) -> None:
    await GATES[gate].hold()
    raise TerminalError("card declined")


@activity(retry_policy=RetryPolicy(initial_interval=60.0, max_attempts=5))
async def flaky_sibling(ctx: WorkflowContext) -> None:
    SIBLING_ATTEMPTS.append(len(SIBLING_ATTEMPTS) + 1)
    raise ConnectionError("partner down")


@activity
async def never_after_the_end(ctx: WorkflowContext) -> None:
    DONE.append("a step after the end")


@workflow
async def gather_saga_wf(ctx: WorkflowContext) -> None:
    async def reserve_then_more() -> None:
        await reserve_gated(ctx, "s-slow")  # still running when the charge fails
        await never_after_the_end(ctx)

    await reserve_inventory(ctx, "s-first")
    await asyncio.gather(reserve_then_more(), fail_when_open(ctx, "s-charge"))


@asynccontextmanager
async def _charge_fails_while(app: EddaApp, wf: Workflow[..., Any], slow: str, charge: str
                              ) -> AsyncIterator[str]:
    """Start ``wf``; once its steps hold at the gates ``slow`` and ``charge``, let the charge
    fail and yield the instance's id when the body has ended, ``slow`` still running.
    Leaving lets ``slow`` finish and checks that start() raised the charge's failure and
    that the instance ended failed."""
    GATES.update({slow: Gate(), charge: Gate()})
    try:
        starting = asyncio.create_task(wf.start())
        await wait_for(GATES[slow].reached)
        await wait_for(GATES[charge].reached)
        GATES[charge].open()
        iid = (await app.find_instances(workflow_name=wf.name))["instances"][0]["instance_id"]
        await wait_until(lambda: _has(app, iid, BodyEnded), "the body to end")
        yield iid
        GATES[slow].open()
        with pytest.raises(TerminalError, match="card declined"):
            await starting
        await _status(app, iid, "failed")
    finally:
        for name in (slow, charge):
            GATES.pop(name).open()


async def test_a_gather_step_still_running_when_the_body_fails_finishes_and_is_compensated(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    await app.initialize()
    UNDONE.clear()
    DONE.clear()
    # The charge fails while the reservation still runs.
    async with _charge_fails_while(app, gather_saga_wf, "s-slow", "s-charge") as iid:
        pass
    # The reservation that finished after the failure is undone too, newest first, and
    # the step after it in its branch never started.
    assert UNDONE == [("cancel_reservation", "s-slow"), ("cancel_reservation", "s-first")]
    assert "a step after the end" not in DONE
    kinds = [type(r.entry).__name__ for r in await read_journal(app.database, iid)]
    assert kinds.index("CompensationsStarted") > max(
        i for i, k in enumerate(kinds) if k == "ActivityCompleted"), kinds
    assert kinds[-1] == "WorkflowFailed", kinds


@workflow
async def gather_retrying_wf(ctx: WorkflowContext) -> None:
    await asyncio.gather(flaky_sibling(ctx), fail_when_open(ctx, "r-charge"))


async def test_a_failure_is_not_held_up_by_a_retrying_gather_step_which_stops_retrying(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    SIBLING_ATTEMPTS.clear()
    GATES["r-charge"] = Gate()
    try:
        starting = asyncio.create_task(gather_retrying_wf.start())
        await wait_for(GATES["r-charge"].reached)
        await wait_until(lambda: SIBLING_ATTEMPTS == [1], "the sibling's first attempt")
        # It fails while the sibling waits a minute to try again: the failure does not
        # wait out that minute, and the sibling makes no attempt after the body ended.
        GATES["r-charge"].open()
        with pytest.raises(TerminalError, match="card declined"):
            await starting
    finally:
        GATES.pop("r-charge").open()
    inst = (await app.find_instances(workflow_name="gather_retrying_wf"))["instances"][0]
    await _status(app, inst["instance_id"], "failed")
    assert SIBLING_ATTEMPTS == [1]
    journal = await read_journal(app.database, inst["instance_id"])
    failed = [r.entry for r in journal if isinstance(r.entry, ActivityFailed)]
    assert [e.activity_name for e in failed] == ["fail_when_open"], failed


@workflow
async def gather_cancel_wf(ctx: WorkflowContext) -> object:
    paid, _ = await asyncio.gather(wait_event(ctx, "gather.paid"),
                                   reserve_gated(ctx, "c-slow"))
    return paid.data


async def test_a_cancel_lets_a_running_gather_step_finish_and_compensates_it(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    await app.initialize()
    UNDONE.clear()
    DONE.clear()
    GATES["c-slow"] = Gate()
    try:
        iid = await gather_cancel_wf.start()  # returns once it waits for the event
        await wait_for(GATES["c-slow"].reached)
        assert await app.cancel_workflow(iid, cancelled_by="ops")
        GATES["c-slow"].open()
        await _status(app, iid, "cancelled")
    finally:
        GATES.pop("c-slow").open()
    assert UNDONE == [("cancel_reservation", "c-slow")]


async def _has(app: EddaApp, instance_id: str, kind: type) -> bool:
    return any(isinstance(r.entry, kind) for r in await read_journal(app.database, instance_id))


@activity
async def book_with_partner(ctx: WorkflowContext, gate: str) -> str:
    DONE.append("book")
    await GATES[gate].hold()
    await never_after_the_end(ctx)  # an activity's own call: part of its step, so it runs
    return "booked"


@workflow
async def gather_nested_wf(ctx: WorkflowContext) -> None:
    await asyncio.gather(book_with_partner(ctx, "n-book"), fail_when_open(ctx, "n-charge"))


async def test_an_activity_running_when_the_body_fails_still_makes_its_own_calls(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    DONE.clear()
    async with _charge_fails_while(app, gather_nested_wf, "n-book", "n-charge") as iid:
        pass
    assert DONE == ["book", "a step after the end"]
    names = [r.entry.activity_name for r in await read_journal(app.database, iid)
             if isinstance(r.entry, ActivityCompleted)]
    assert sorted(names) == ["book_with_partner", "never_after_the_end"], names


@workflow
async def gather_registers_wf(ctx: WorkflowContext) -> None:
    async def reserve_and_register() -> None:
        await reserve_gated(ctx, "k-slow")
        await register_compensation(ctx, cancel_reservation, item_id="k-registered")

    await asyncio.gather(reserve_and_register(), fail_when_open(ctx, "k-charge"))


async def test_a_branch_s_compensation_registered_after_the_body_ended_is_refused(
    sqlite_url: str, make_app: MakeApp
) -> None:
    # The branch's activity finishes after the failure; the registration after it is a
    # new step, so it is refused, and only the finished activity is compensated.
    app = make_app(sqlite_url)
    await app.initialize()
    UNDONE.clear()
    async with _charge_fails_while(app, gather_registers_wf, "k-slow", "k-charge") as iid:
        pass
    assert UNDONE == [("cancel_reservation", "k-slow")]
    kinds = [type(r.entry).__name__ for r in await read_journal(app.database, iid)]
    assert "CompensationRegistered" not in kinds and kinds[-1] == "WorkflowFailed", kinds


async def test_a_cancel_is_refused_while_the_body_winds_down(
    sqlite_url: str, make_app: MakeApp
) -> None:
    # Its outcome is decided (it failed); a cancel must not turn it into another one.
    app = make_app(sqlite_url)
    await app.initialize()
    async with _charge_fails_while(app, gather_saga_wf, "s-slow", "s-charge") as iid:
        refused = await app.cancel_workflow(iid, cancelled_by="ops")
        assert not refused and "already ending" in refused.reason


@workflow
async def gather_recur_wf(ctx: WorkflowContext, round: int) -> str:
    if round > 0:
        return f"round {round}"

    async def reserve_then_more() -> None:
        await reserve_gated(ctx, "u-slow")
        await never_after_the_end(ctx)

    async def recur_when_open() -> None:
        await GATES["u-recur"].hold()
        await ctx.recur(round=round + 1)

    await asyncio.gather(reserve_then_more(), recur_when_open())
    return "never"


async def test_a_recur_from_a_branch_waits_for_the_running_steps_and_starts_no_new_one(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    DONE.clear()
    GATES.update({"u-slow": Gate(), "u-recur": Gate()})
    try:
        starting = asyncio.create_task(gather_recur_wf.start(round=0))
        await wait_for(GATES["u-slow"].reached)
        await wait_for(GATES["u-recur"].reached)
        iid = (await app.find_instances(workflow_name="gather_recur_wf"))["instances"][0][
            "instance_id"]
        GATES["u-recur"].open()
        await wait_until(lambda: _has(app, iid, BodyEnded), "the body's end")
        assert (await app.get_instance(iid) or {})["status"] == "running"  # not yet recurred
        GATES["u-slow"].open()
        await starting
        await _status(app, iid, "recurred")
    finally:
        for name in ("u-slow", "u-recur"):
            GATES.pop(name).open()
    assert DONE == ["reserve u-slow"]
