"""Workflows and activities through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from edda import (
    EddaApp,
    RetryExhaustedError,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    workflow,
)
from edda.runtime.errors import WorkflowNotInitializedError
from tests import future_models
from tests.support.gates import Gate, finished, interrupt_and_restart, settle, wait_for

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
CALLS: Counter[str] = Counter()
GATES: dict[str, Gate] = {}
FAST = RetryPolicy(initial_interval=0.001, backoff_coefficient=2, max_interval=0.01,
                   max_attempts=3)


@activity
async def add(ctx: WorkflowContext, a: int, b: int) -> int:
    CALLS[f"add:{a}+{b}"] += 1
    return a + b


@activity
def sync_scale(ctx: WorkflowContext, value: int, *, factor: int = 1) -> dict[str, Any]:
    CALLS["sync_scale"] += 1
    return {"value": value * factor, "thread": threading.current_thread().name != "MainThread"}


@activity
async def gate(ctx: WorkflowContext, key: str) -> str:
    g = GATES.get(key)
    if g is not None:
        await g.hold()
    return key


@workflow
async def arithmetic_wf(ctx: WorkflowContext, x: int, y: int = 10) -> dict[str, Any]:
    total = await add(ctx, x, y)
    parallel = await asyncio.gather(*(add(ctx, total, i) for i in range(3)))
    scaled = await sync_scale(ctx, total, factor=3)
    return {"total": total, "parallel": parallel, "scaled": scaled}


async def test_workflow_runs_activities_and_records_history(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    instance_id = await arithmetic_wf.start(x=1, y=2)
    assert instance_id.startswith("arithmetic_wf-") and len(instance_id) == len("arithmetic_wf-") + 32
    inst = await app.get_instance(instance_id)
    assert inst is not None and inst["status"] == "completed"
    assert inst["output_data"] == {
        "result": {"total": 3, "parallel": [3, 4, 5], "scaled": {"value": 9, "thread": True}}
    }
    assert inst["input_data"] == {"x": 1, "y": 2}
    history = await app.get_history(instance_id)
    assert [h["event_type"] for h in history] == (
        ["WorkflowStarted"] + ["ActivityCompleted"] * 5 + ["WorkflowCompleted"]
    )
    assert {h["activity_id"] for h in history[1:-1]} == {
        "add:1", "add:2", "add:3", "add:4", "sync_scale:1"
    }
    assert [h["id"] for h in history] == list(range(7))


async def test_gather_replays_by_call_order(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def gather_wf(ctx: WorkflowContext) -> list[int]:
        results = await asyncio.gather(add(ctx, 100, 1), add(ctx, 100, 2), add(ctx, 100, 3))
        await gate(ctx, "gather")
        return list(results)

    before: Counter[str] = Counter()
    app2, outcome = await interrupt_and_restart(
        make_app, sqlite_url, GATES, "gather", gather_wf.start,
        between=lambda: before.update(CALLS))
    assert isinstance(outcome, RuntimeError)
    assert await _wait_completed(app2, "gather_wf") == [101, 102, 103]
    assert CALLS == before, "no activity ran again on replay"


async def test_sync_activity_accepts_keyword_arguments(db_url: str, make_app: MakeApp) -> None:
    await make_app(db_url).initialize()

    @workflow
    async def kw_sync_wf(ctx: WorkflowContext) -> dict[str, Any]:
        return await sync_scale(ctx, 4, factor=5)

    iid = await kw_sync_wf.start()
    assert iid


async def test_explicit_activity_id(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()

    @workflow
    async def explicit_wf(ctx: WorkflowContext) -> int:
        a = await add(ctx, 1, 1, activity_id="first-add")
        return await add(ctx, a, 1, activity_id="second-add")

    iid = await explicit_wf.start()
    ids = [h["activity_id"] for h in await app.get_history(iid)]
    assert ids[1:3] == ["first-add", "second-add"]


async def test_duplicate_explicit_id_is_a_clear_error(sqlite_url: str, make_app: MakeApp) -> None:
    await make_app(sqlite_url).initialize()

    @workflow
    async def dup_wf(ctx: WorkflowContext) -> None:
        await add(ctx, 1, 1, activity_id="same")
        await add(ctx, 1, 2, activity_id="same")

    with pytest.raises(ValueError, match="'same' is used twice"):
        await dup_wf.start()


async def test_kwargs_workflow_receives_its_input(db_url: str, make_app: MakeApp) -> None:
    await make_app(db_url).initialize()
    seen: dict[str, Any] = {}

    @workflow
    async def kwargs_wf(ctx: WorkflowContext, first: int, **rest: Any) -> None:
        seen.update(first=first, rest=rest)

    await kwargs_wf.start(first=1, b=2, c={"d": 3})
    assert seen == {"first": 1, "rest": {"b": 2, "c": {"d": 3}}}


async def test_unknown_and_missing_keywords_are_type_errors(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) 'z'.*accepts 'x', 'y'"):
        await arithmetic_wf.start(x=1, z=2)
    with pytest.raises(TypeError, match=r"missing required keyword argument.*'x'"):
        await arithmetic_wf.start(y=1)
    assert (await app.find_instances())["instances"] == []


class Order(pydantic.BaseModel):
    order_id: str
    amount: float


@activity
async def echo_order(ctx: WorkflowContext, order: Order) -> Order:
    return Order(order_id=order.order_id.upper(), amount=order.amount)


@workflow
async def order_model_wf(ctx: WorkflowContext, order: Order) -> dict[str, Any]:
    assert isinstance(order, Order)
    echoed = await echo_order(ctx, order)
    await gate(ctx, "order-model")
    return {"echoed": echoed, "type": type(echoed).__name__}


async def test_models_validated_and_restored_on_replay(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(pydantic.ValidationError):
        await order_model_wf.start(order={"order_id": "a"})
    assert (await app.find_instances())["instances"] == []
    await app.shutdown()
    app2, _ = await interrupt_and_restart(
        make_app, sqlite_url, GATES, "order-model",
        lambda: order_model_wf.start(order_id="o-1", amount=3.5))
    result = await _wait_completed(app2, "order_model_wf")
    assert result == {"echoed": {"order_id": "O-1", "amount": 3.5}, "type": "Order"}


async def test_future_annotations_module_types_survive_replay(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app2, _ = await interrupt_and_restart(
        make_app, sqlite_url, future_models.GATES, "typed",
        lambda: future_models.future_typed_wf.start(
            items=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], color="red"))
    result = await _wait_completed(app2, "future_typed_wf")
    assert result == {"types": ["Item", "Item", "Color"], "qty": [2, 4], "color": "blue"}


async def _wait_completed(app: EddaApp, name: str, timeout: float = 10.0) -> Any:
    """The result of the (one, already stored) instance of workflow ``name``."""
    (inst,) = (await app.find_instances(workflow_name=name))["instances"]
    inst = await finished(app, inst["instance_id"], timeout, statuses=("completed",))
    return inst["output_data"]["result"]


class Flaky(Exception):
    pass


@activity(retry_policy=FAST)
async def flaky(ctx: WorkflowContext, key: str, failures: int) -> str:
    CALLS[key] += 1
    if CALLS[key] <= failures:
        raise Flaky(f"attempt {CALLS[key]}")
    return f"ok after {CALLS[key]}"


async def test_retry_then_success(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()

    @workflow
    async def retry_ok_wf(ctx: WorkflowContext) -> str:
        return await flaky(ctx, "retry-ok", 2)

    iid = await retry_ok_wf.start()
    inst = await app.get_instance(iid)
    assert inst is not None and inst["output_data"] == {"result": "ok after 3"}
    history = await app.get_history(iid)
    assert history[1]["event_data"]["attempts"] == 3


async def test_retry_exhausted_has_cause_and_fails_workflow(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()

    @workflow
    async def retry_bad_wf(ctx: WorkflowContext) -> str:
        return await flaky(ctx, "retry-bad", 99)

    with pytest.raises(RetryExhaustedError, match=r"failed after 3 attempts: Max attempts \(3\)") as e:
        await retry_bad_wf.start()
    assert isinstance(e.value.__cause__, Flaky)
    assert CALLS["retry-bad"] == 3
    found = await app.find_instances(workflow_name="retry_bad_wf")
    inst = found["instances"][0]
    assert inst["status"] == "failed"
    assert inst["output_data"]["error_type"] == "RetryExhaustedError"


async def test_terminal_error_is_not_retried(sqlite_url: str, make_app: MakeApp) -> None:
    await make_app(sqlite_url).initialize()

    @activity
    async def refuse(ctx: WorkflowContext) -> None:
        CALLS["refuse"] += 1
        raise TerminalError("card declined")

    @workflow
    async def terminal_wf(ctx: WorkflowContext) -> None:
        await refuse(ctx)

    with pytest.raises(TerminalError, match="card declined"):
        await terminal_wf.start()
    assert CALLS["refuse"] == 1


async def test_app_default_retry_policy_applies(sqlite_url: str, make_app: MakeApp) -> None:
    await make_app(sqlite_url, default_retry_policy=RetryPolicy(
        initial_interval=0.001, max_attempts=2)).initialize()

    @activity
    async def always_fails(ctx: WorkflowContext) -> None:
        CALLS["always"] += 1
        raise Flaky("no")

    @workflow
    async def default_policy_wf(ctx: WorkflowContext) -> None:
        await always_fails(ctx)

    with pytest.raises(RetryExhaustedError):
        await default_policy_wf.start()
    assert CALLS["always"] == 2


def test_retry_policy_delay_formula_and_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.initial_interval, policy.backoff_coefficient, policy.max_interval,
            policy.max_attempts, policy.max_duration) == (1.0, 2.0, 60.0, 5, 300.0)
    assert [policy.calculate_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert not RetryPolicy(non_retryable_error_types=(ValueError,)).is_retryable(ValueError())
    assert not policy.is_retryable(TerminalError())
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_unserialisable_result_names_activity_and_type(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()

    @activity
    async def make_lock(ctx: WorkflowContext) -> object:
        return threading.Lock()

    @workflow
    async def bad_result_wf(ctx: WorkflowContext) -> None:
        await make_lock(ctx)

    with pytest.raises(TypeError, match=r"result of activity 'make_lock' is a _thread\.lock"):
        await bad_result_wf.start()


def test_non_async_workflow_is_rejected() -> None:
    with pytest.raises(TypeError, match="must be an async function"):
        @workflow
        def not_async(ctx: WorkflowContext) -> None:
            return None


@pytest.mark.parametrize("url", ["mysql://x@localhost/db", "sqlite+pysqlite:///x.db", "redis://x", ""])
def test_unsupported_db_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="db_url"):
        EddaApp("svc", url)


async def test_start_without_a_single_app_to_start_is_a_clear_error(sqlite_url: str) -> None:
    with pytest.raises(WorkflowNotInitializedError, match="not initialized"):
        await arithmetic_wf.start(x=1)  # no app at all
    first, second = EddaApp("one", sqlite_url), EddaApp("two", sqlite_url)
    with pytest.raises(WorkflowNotInitializedError, match="not initialized"):
        await arithmetic_wf.start(x=1)  # two apps never initialized: which one?
    assert first.fresh and second.fresh


async def test_find_instances_filters_and_pages(db_url: str, make_app: MakeApp) -> None:
    from datetime import UTC, datetime

    app = make_app(db_url)
    await app.initialize()
    t0 = datetime.now(UTC)
    ids = [await arithmetic_wf.start(x=i) for i in range(5)]
    seen: list[str] = []
    token = None
    while True:
        page = await app.find_instances(workflow_name="arithmetic", limit=2, page_token=token)
        seen += [i["instance_id"] for i in page["instances"]]
        token = page["next_page_token"]
        assert page["has_more"] == (token is not None)
        if token is None:
            break
    assert seen == list(reversed(ids))
    by_input = await app.find_instances(input_filters={"x": 3})
    assert [i["instance_id"] for i in by_input["instances"]] == [ids[3]]
    assert (await app.find_instances(started_before=t0))["instances"] == []
    assert len((await app.find_instances(started_after=t0, status="completed"))["instances"]) == 5
    for bad in ({"status": "nope"}, {"input_filters": {"a;drop": 1}}, {"limit": 0},
                {"page_token": "garbage"}, {"started_after": datetime(2020, 1, 1)}):
        with pytest.raises(ValueError):
            await app.find_instances(**bad)


async def test_hooks_fire_on_every_path(sqlite_url: str, make_app: MakeApp) -> None:
    from edda import HooksBase

    events: list[tuple[str, ...]] = []

    class Recorder(HooksBase):
        async def on_workflow_start(self, instance_id: str, workflow_name: str,
                                    input_data: dict[str, Any]) -> None:
            events.append(("start", workflow_name))

        async def on_workflow_complete(self, instance_id: str, workflow_name: str,
                                       result: Any) -> None:
            events.append(("complete", workflow_name))

        async def on_workflow_failed(self, instance_id: str, workflow_name: str,
                                     error: Exception) -> None:
            events.append(("failed", type(error).__name__))

        async def on_activity_start(self, instance_id: str, activity_id: str,
                                    activity_name: str, is_replaying: bool) -> None:
            events.append(("act-start", activity_id, str(is_replaying)))

        async def on_activity_complete(self, instance_id: str, activity_id: str,
                                       activity_name: str, result: Any, cache_hit: bool) -> None:
            events.append(("act-done", activity_id, str(cache_hit)))

        async def on_activity_retry(self, instance_id: str, activity_id: str, activity_name: str,
                                    error: Exception, attempt: int, delay: float) -> None:
            events.append(("retry", activity_id, str(attempt)))

        async def on_activity_failed(self, instance_id: str, activity_id: str,
                                     activity_name: str, error: Exception) -> None:
            events.append(("act-failed", activity_id))

    @workflow
    async def hooked_wf(ctx: WorkflowContext, fail: bool) -> int:
        total = await add(ctx, 2, 2)
        await flaky(ctx, f"hooked-{fail}", 1)
        await gate(ctx, "hooked")
        if fail:
            raise TerminalError("asked to fail")
        return total

    GATES["hooked"] = Gate()
    app = make_app(sqlite_url, hooks=Recorder())
    await app.initialize()
    task = asyncio.create_task(hooked_wf.start(fail=False))
    await wait_for(GATES["hooked"].reached)
    await app.shutdown()
    await settle(task)
    assert events == [
        ("start", "hooked_wf"),
        ("act-start", "add:1", "False"), ("act-done", "add:1", "False"),
        ("act-start", "flaky:1", "False"), ("retry", "flaky:1", "1"),
        ("act-done", "flaky:1", "False"),
        ("act-start", "gate:1", "False"),
    ]
    events.clear()
    del GATES["hooked"]
    app2 = make_app(sqlite_url, hooks=Recorder())
    await app2.initialize()
    await _wait_completed(app2, "hooked_wf")
    assert events == [
        ("act-start", "add:1", "True"), ("act-done", "add:1", "True"),
        ("act-start", "flaky:1", "True"), ("act-done", "flaky:1", "True"),
        ("act-start", "gate:1", "False"), ("act-done", "gate:1", "False"),
        ("complete", "hooked_wf"),
    ]
    events.clear()
    with pytest.raises(TerminalError):
        await hooked_wf.start(fail=True)
    assert events[-1] == ("failed", "TerminalError")


async def test_workflow_decorator_with_arguments(sqlite_url: str, make_app: MakeApp) -> None:
    from edda import Workflow

    @workflow(event_handler=True, lock_timeout_seconds=30)
    async def configured_wf(ctx: WorkflowContext, n: int) -> int:
        return await add(ctx, n, n)

    assert isinstance(configured_wf, Workflow)
    assert (configured_wf.event_handler, configured_wf.lock_timeout_seconds) == (True, 30)
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await configured_wf.start(n=21)
    assert (await app.get_instance(iid))["output_data"] == {"result": 42}  # type: ignore[index]


REPLAY_FLAGS: list[tuple[str, bool]] = []


@workflow
async def replay_flag_wf(ctx: WorkflowContext) -> None:
    REPLAY_FLAGS.append(("before add", ctx.is_replaying))
    await add(ctx, 7, 7)
    REPLAY_FLAGS.append(("before gate", ctx.is_replaying))
    await gate(ctx, "replay-flag")
    REPLAY_FLAGS.append(("after gate", ctx.is_replaying))


async def test_is_replaying_until_the_first_new_call(sqlite_url: str, make_app: MakeApp) -> None:
    first_run: list[tuple[str, bool]] = []

    def keep_first_run() -> None:
        first_run.extend(REPLAY_FLAGS)
        REPLAY_FLAGS.clear()

    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "replay-flag",
                                          replay_flag_wf.start, between=keep_first_run)
    assert first_run == [("before add", False), ("before gate", False)]
    await _wait_completed(app2, "replay_flag_wf")
    assert REPLAY_FLAGS == [("before add", True), ("before gate", False), ("after gate", False)]
