"""Retrying a failed instance: it runs again from its last good step. Completed
steps are not run again, the failed step and what follows run anew, a restart in
the middle replays the retried journal, and what cannot be retried is refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from edda import (
    EddaApp,
    HooksBase,
    RetryExhaustedError,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    receive,
    send_event,
    subscribe,
    wait_event,
    workflow,
)
from edda.runtime.admin import AdminClient
from tests.support.gates import Gate, finished, settle, wait_for, wait_until
from tests.support.web import serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]

RUNS: Counter[str] = Counter()
BROKEN: set[str] = set()
HOLD: dict[str, Gate] = {}


@activity
async def reserve(ctx: WorkflowContext, order: str) -> str:
    RUNS["reserve"] += 1
    return f"r-{order}"


@activity(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.001))
async def charge(ctx: WorkflowContext, order: str) -> str:
    RUNS["charge"] += 1
    if "partner" in BROKEN:
        raise ConnectionError("payment partner unreachable")
    return f"c-{order}"


@activity
async def ship(ctx: WorkflowContext, order: str) -> str:
    RUNS["ship"] += 1
    gate = HOLD.get("ship")
    if gate is not None:
        await gate.hold()
    return f"s-{order}"


@workflow
async def retried_order(ctx: WorkflowContext, order: str) -> list[str]:
    steps = [await reserve(ctx, order), await charge(ctx, order)]
    if "workflow" in BROKEN:
        raise RuntimeError("a bug in the workflow's own code")
    steps.append(await ship(ctx, order))
    return steps


@compensation
async def undo_reserve(ctx: WorkflowContext, order: str) -> None:
    RUNS["undo"] += 1


@activity
@on_failure(undo_reserve)
async def reserve_with_undo(ctx: WorkflowContext, order: str) -> str:
    return f"r-{order}"


@activity
async def refuse(ctx: WorkflowContext) -> None:
    raise TerminalError("no")


@workflow
async def compensated_flow(ctx: WorkflowContext, order: str) -> None:
    await reserve_with_undo(ctx, order)
    await refuse(ctx)


@pytest.fixture(autouse=True)
def _clean() -> None:
    RUNS.clear()
    BROKEN.clear()
    HOLD.clear()


async def _failed(app: EddaApp, order: str) -> str:
    iid = f"order-{order}"
    with pytest.raises((RetryExhaustedError, RuntimeError)):  # start() runs it to its end
        await retried_order.start(order=order, instance_id=iid)
    await finished(app, iid, statuses=("failed",))
    return iid


async def test_a_failed_activity_runs_again_and_completed_steps_do_not(
    db_url: str, make_app: MakeApp
) -> None:
    app = make_app(db_url)
    await app.initialize()
    BROKEN.add("partner")
    iid = await _failed(app, "o1")
    assert RUNS == {"reserve": 1, "charge": 2}
    BROKEN.clear()  # the partner is back
    outcome = await app.retry_workflow(iid)
    assert outcome and outcome.reason == "retried"
    assert await app.wait_result(iid, timeout=10) == ["r-o1", "c-o1", "s-o1"]
    assert RUNS == {"reserve": 1, "charge": 3, "ship": 1}
    kinds = [item["event_type"] for item in await app.get_history(iid)]
    # The history keeps the failed attempt, then the retry, then the new steps.
    assert kinds == ["WorkflowStarted", "ActivityCompleted", "ActivityFailed", "WorkflowFailed",
                     "WorkflowRetried", "ActivityCompleted", "ActivityCompleted",
                     "WorkflowCompleted"]


async def test_a_failure_of_the_workflow_code_runs_again_from_the_journal(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    BROKEN.add("workflow")
    iid = await _failed(app, "o2")
    BROKEN.clear()  # the bug is fixed
    assert await app.retry_workflow(iid)
    assert await app.wait_result(iid, timeout=10) == ["r-o2", "c-o2", "s-o2"]
    assert RUNS == {"reserve": 1, "charge": 1, "ship": 1}


async def test_a_restart_during_the_retried_run_replays_it(
    sqlite_url: str, make_app: MakeApp
) -> None:
    first = make_app(sqlite_url)
    await first.initialize()
    BROKEN.add("partner")
    iid = await _failed(first, "o3")
    BROKEN.clear()
    HOLD["ship"] = Gate()
    assert await first.retry_workflow(iid)
    waiting = asyncio.create_task(first.wait_result(iid))
    await wait_for(HOLD["ship"].reached)
    await first.shutdown()  # crashes out of the retried run, inside ship
    await settle(waiting)
    del HOLD["ship"]
    second = make_app(sqlite_url)
    await second.initialize()
    assert await second.wait_result(iid, timeout=10) == ["r-o3", "c-o3", "s-o3"]
    assert RUNS == {"reserve": 1, "charge": 3, "ship": 2}


async def test_what_cannot_be_retried_is_refused(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    done = await retried_order.start(order="o4")
    await finished(app, done, statuses=("completed",))
    outcome = await app.retry_workflow(done)
    assert not outcome and "is completed; only a failed instance" in outcome.reason
    missing = await app.retry_workflow("no-such-instance")
    assert not missing and "no workflow instance" in missing.reason
    compensated = "compensated-o5"
    with pytest.raises(TerminalError):
        await compensated_flow.start(order="o5", instance_id=compensated)
    await finished(app, compensated, statuses=("failed",))
    outcome = await app.retry_workflow(compensated)
    assert not outcome and "ran its compensations" in outcome.reason
    assert (await app.get_instance(compensated) or {})["status"] == "failed"
    assert RUNS["undo"] == 1


async def test_the_json_api_retries(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    BROKEN.add("partner")
    iid = await _failed(app, "o6")
    BROKEN.clear()
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        answer = await client.post(f"/api/instances/{iid}/retry")
        assert answer.status_code == 200
        assert answer.json() == {"status": "running", "instance_id": iid}
        assert await app.wait_result(iid, timeout=10) == ["r-o6", "c-o6", "s-o6"]
        again = await client.post(f"/api/instances/{iid}/retry")
        assert again.status_code == 409
        assert again.json()["error_type"] == "NotRetryable"
        assert (await client.post("/api/instances/nobody/retry")).status_code == 404


async def test_history_shows_edda_s_retry_metadata(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    BROKEN.add("partner")
    iid = await _failed(app, "o7")
    history = await app.get_history(iid)
    failed = next(h for h in history if h["event_type"] == "ActivityFailed")
    meta = failed["event_data"]["retry_metadata"]
    assert meta["total_attempts"] == 2 and meta["exhausted"] is True
    assert [e["attempt"] for e in meta["errors"]] == [1, 2]
    assert meta["errors"][0]["error_type"] == "ConnectionError"
    assert meta["last_error"] == {"error_type": "ConnectionError",
                                  "message": "payment partner unreachable"}
    assert meta["total_duration_ms"] >= 0 and failed["event_data"]["duration_ms"] >= 0
    BROKEN.clear()
    assert await app.retry_workflow(iid)
    await app.wait_result(iid, timeout=10)
    done = [h for h in await app.get_history(iid) if h["event_type"] == "ActivityCompleted"
            and h["event_data"]["activity_name"] == "charge"]
    assert "retry_metadata" not in done[0]["event_data"]  # one attempt: nothing to tell


@activity
async def flaky_step(ctx: WorkflowContext) -> str:
    RUNS["flaky_step"] += 1
    if "step" in BROKEN:
        raise TerminalError("not yet")
    return "ok"


@workflow
async def subscribes_then_fails(ctx: WorkflowContext) -> object:
    await subscribe(ctx, "retry-jobs", mode="competing")
    await flaky_step(ctx)
    return (await receive(ctx, "retry-jobs")).data


@workflow
async def waits_beside_a_failure(ctx: WorkflowContext) -> list[object]:
    async def go() -> object:
        return (await wait_event(ctx, "retry.go")).data

    return list(await asyncio.gather(go(), flaky_step(ctx)))


async def test_a_retried_run_keeps_its_subscriptions_and_open_waits(
    db_url: str, make_app: MakeApp
) -> None:
    # The sweep runs once a minute: only restored rows explain a prompt wake-up.
    app = make_app(db_url, recovery_interval=60.0)
    await app.initialize()
    BROKEN.add("step")
    for wf, iid in ((subscribes_then_fails, "sub-1"), (waits_beside_a_failure, "wait-1")):
        with contextlib.suppress(TerminalError):
            await wf.start(instance_id=iid)
        await finished(app, iid, statuses=("failed",))
    BROKEN.clear()
    assert await app.retry_workflow("sub-1") and await app.retry_workflow("wait-1")
    await app.publish("retry-jobs", {"job": 1})
    assert await app.wait_result("sub-1", timeout=10) == {"job": 1}
    await send_event("retry.go", "/t", {"go": True})
    assert await app.wait_result("wait-1", timeout=10) == [{"go": True}, "ok"]


class SlowFailureHook(HooksBase):
    """Holds the failed run's actor in its `on_workflow_failed` hook until opened."""

    def __init__(self) -> None:
        self.gate = Gate()

    async def on_workflow_failed(self, instance_id: str, workflow_name: str,
                                 error: Exception) -> None:
        await self.gate.hold()


@pytest.mark.parametrize("from_where", ["this node", "the edda command"])
async def test_a_retry_while_the_failed_run_is_still_ending_runs_it_at_once(
    sqlite_url: str, make_app: MakeApp, from_where: str
) -> None:
    hook = SlowFailureHook()
    # No sweep comes to the rescue within the test: the wake-up must not be lost.
    app = make_app(sqlite_url, hooks=hook, recovery_interval=600.0, lease_seconds=600.0)
    await app.initialize()
    BROKEN.add("partner")
    iid = "order-ending"
    starting = asyncio.create_task(retried_order.start(order="ending", instance_id=iid))
    await wait_for(hook.gate.reached)  # failed, and its actor is still in the hook
    BROKEN.clear()
    if from_where == "this node":
        assert await app.retry_workflow(iid)
    else:
        async with AdminClient(sqlite_url) as admin:
            assert (await admin.retry(iid)).accepted
        # The mail reached the ending actor, which keeps it for after it has left.
        await wait_until(lambda: app._runner.resident[iid].missed, "the wake-up to arrive")
    hook.gate.open()
    with contextlib.suppress(RetryExhaustedError):
        await starting
    assert await app.wait_result(iid, timeout=10) == ["r-ending", "c-ending", "s-ending"]


@activity
async def gated_step(ctx: WorkflowContext, name: str) -> str:
    RUNS[name] += 1
    await HOLD[name].hold()
    if name in BROKEN:
        raise TerminalError(f"{name} broke")
    return name


@workflow
async def side_by_side(ctx: WorkflowContext) -> list[str]:
    return list(await asyncio.gather(gated_step(ctx, "slow"), gated_step(ctx, "other"),
                                     gated_step(ctx, "charge")))


async def test_a_retry_runs_again_what_failed_while_the_body_wound_down(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    BROKEN.update({"other", "charge"})
    HOLD.update({name: Gate() for name in ("slow", "other", "charge")})
    iid = "side-by-side"
    starting = asyncio.create_task(side_by_side.start(instance_id=iid))
    for name in ("slow", "other", "charge"):
        await wait_for(HOLD[name].reached)
    HOLD["charge"].open()  # the body fails here; "other" then fails, "slow" completes
    await wait_until(lambda: _journaled(app, iid, "BodyEnded"), "the body's end")
    HOLD["other"].open()
    await wait_until(lambda: _journaled(app, iid, "ActivityFailed", 2), "the second failure")
    HOLD["slow"].open()
    with pytest.raises(TerminalError, match="charge broke"):
        await starting
    await finished(app, iid, statuses=("failed",))
    BROKEN.clear()
    assert await app.retry_workflow(iid)
    assert await app.wait_result(iid, timeout=10) == ["slow", "other", "charge"]
    # The step that completed is not run again; both failed ones are.
    assert RUNS == Counter({"slow": 1, "other": 2, "charge": 2})


async def _journaled(app: EddaApp, instance_id: str, kind: str, count: int = 1) -> bool:
    from edda.journal.store import read_journal

    kinds = [type(r.entry).__name__ for r in await read_journal(app.database, instance_id)]
    return kinds.count(kind) >= count
