"""Durable LlamaIndex workflows: real llama-index-core workflows run by Edda."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step
from pydantic import BaseModel
from workflows import catch_error
from workflows.events import StepFailedEvent
from workflows.resource import Resource
from workflows.retry_policy import retry_policy, stop_after_attempt, wait_fixed

from edda import EddaApp, RetryPolicy, WorkflowContext, send_event, workflow
from edda.integrations.llamaindex import (
    DurableSleepEvent,
    DurableWaitEvent,
    DurableWorkflowRunner,
    ResumeEvent,
    WorkflowExecutionError,
)
from edda.journal.database import Database
from edda.journal.entries import ActivityCompleted, ActivityFailed
from edda.journal.store import InstanceFilter, SqlJournalStore, read_journal
from tests.support.gates import Gate, finished, interrupt_and_restart
from tests.support.processes import kill_at_line

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
SUPPORT = Path(__file__).parent / "support"
FAST = RetryPolicy(initial_interval=0.01, max_attempts=4)
CALLS: Counter[str] = Counter()
GATES: dict[str, Gate] = {}


async def _result(app: EddaApp, instance_id: str) -> Any:
    inst = await finished(app, instance_id, timeout=20.0)
    assert inst["status"] == "completed", inst["output_data"]
    return inst["output_data"]["result"]


def _failure(exc: WorkflowExecutionError) -> dict[str, Any]:
    """What a test workflow returns when its LlamaIndex run fails."""
    return {"step": exc.step_name, "message": str(exc), "cause": type(exc.__cause__).__name__}


async def _steps(app: EddaApp, instance_id: str) -> list[str]:
    return [h["activity_id"] for h in await app.get_history(instance_id)
            if h["event_type"] in ("ActivityCompleted", "ActivityFailed", "WaitStarted")]


# -- the seed's Quick Start, as written ------------------------------------------------------


def test_quick_start_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SUPPORT / "llamaindex_quickstart.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Received order: ORD-001" in lines
    assert any(line.startswith("Started workflow: order_workflow-") for line in lines)
    summary = json.loads(lines[-1])
    assert summary == {
        "status": "completed",
        "output": {"result": {"order_id": "ORD-001", "status": "processed",
                              "message": "Order completed successfully"}},
        "steps": ["OrderWorkflow.receive_order:1", "OrderWorkflow.process_order:1",
                  "OrderWorkflow.complete_order:1"],
    }
    assert (tmp_path / "app.db").exists()


# -- durable sleep (the seed's example, completed) ---------------------------------------------

SLEEP_SECONDS = 0.4


class ProcessEvent(Event):
    data: dict[str, Any]


def is_rate_limited() -> bool:
    CALLS["is_rate_limited"] += 1
    return CALLS["is_rate_limited"] == 1


class RateLimitedWorkflow(Workflow):
    @step
    async def check_rate_limit(self, ctx, ev: StartEvent) -> DurableSleepEvent | ProcessEvent:
        if is_rate_limited():
            # Sleep (durable timer)
            return DurableSleepEvent(
                seconds=SLEEP_SECONDS,
                resume_data={"retry_count": ev.retry_count + 1}
            )
        return ProcessEvent(data=ev.data)

    @step
    async def handle_resume(self, ctx, ev: ResumeEvent) -> ProcessEvent:
        # Called after DurableSleepEvent completes
        retry_count = ev.data.get("retry_count", 0)
        return ProcessEvent(data={"retried": retry_count})

    @step
    async def process(self, ev: ProcessEvent) -> StopEvent:
        CALLS["process"] += 1
        return StopEvent(result=ev.data)


rate_limited_runner = DurableWorkflowRunner(RateLimitedWorkflow)


@workflow
async def li_rate_limited(ctx: WorkflowContext) -> Any:
    return await rate_limited_runner.run(ctx, retry_count=0, data={"first": True})


async def test_durable_sleep_resumes_with_resume_event(db_url: str, make_app: MakeApp) -> None:
    CALLS.clear()
    app = make_app(db_url)
    await app.initialize()
    iid = await li_rate_limited.start()
    inst = await app.get_instance(iid)
    assert inst is not None and inst["status"] == "waiting_for_timer"
    assert await _result(app, iid) == {"retried": 1}
    assert await _steps(app, iid) == [
        "RateLimitedWorkflow.check_rate_limit:1", "sleep:1",
        "RateLimitedWorkflow.handle_resume:1", "RateLimitedWorkflow.process:1"]


async def test_durable_sleep_survives_a_restart(sqlite_url: str, make_app: MakeApp) -> None:
    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_rate_limited.start()
    await app.shutdown()  # asleep: nothing in memory matters any more
    app2 = make_app(sqlite_url)
    await app2.initialize()
    assert await _result(app2, iid) == {"retried": 1}
    assert CALLS == {"is_rate_limited": 1, "process": 1}, "no step ran twice"


# -- durable wait (the seed's example, as written) ---------------------------------------------


class ApprovalWorkflow(Workflow):
    @step
    async def request_approval(self, ctx, ev: StartEvent) -> DurableWaitEvent:
        # Wait for approval event (up to 1 hour)
        return DurableWaitEvent(
            event_type=f"approval.{ev.request_id}",
            timeout_seconds=3600,
        )

    @step
    async def process_approval(self, ctx, ev: ResumeEvent) -> StopEvent:
        # Called when external event arrives
        approved = ev.data.get("approved", False)
        return StopEvent(result={"approved": approved})


approval_runner = DurableWorkflowRunner(ApprovalWorkflow)


@workflow
async def li_approval(ctx: WorkflowContext, request_id: str) -> Any:
    return await approval_runner.run(ctx, request_id=request_id)


async def test_durable_wait_is_resumed_by_send_event(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    iid = await li_approval.start(request_id="REQ-123")
    other = await li_approval.start(request_id="REQ-999")
    inst = await app.get_instance(iid)
    assert inst is not None and inst["status"] == "waiting_for_message"

    await send_event(
        event_type="approval.REQ-123",
        source="approval-service",
        data={"approved": True},
    )
    assert await _result(app, iid) == {"approved": True}
    still = await app.get_instance(other)
    assert still is not None and still["status"] == "waiting_for_message"
    assert await _steps(app, iid) == [
        "ApprovalWorkflow.request_approval:1", "receive_approval.REQ-123:1",
        "ApprovalWorkflow.process_approval:1"]


# -- retries -----------------------------------------------------------------------------------


class FlakyWorkflow(Workflow):
    @step
    async def charge(self, ctx: Context, ev: StartEvent) -> StopEvent:
        CALLS["charge"] += 1
        seen = await ctx.store.get("failed_attempts", default=0)
        await ctx.store.set("failed_attempts", seen + 1)  # dropped when the attempt fails
        if CALLS["charge"] < 3:
            raise ConnectionError("payment gateway timeout")
        return StopEvent(result={"attempt": CALLS["charge"], "seen": seen})


class HopelessWorkflow(Workflow):
    @step(retry_policy=retry_policy(wait=wait_fixed(0.01), stop=stop_after_attempt(2)))
    async def call_api(self, ev: StartEvent) -> StopEvent:
        CALLS["call_api"] += 1
        raise TimeoutError(f"attempt {CALLS['call_api']} timed out")


flaky_runner = DurableWorkflowRunner(FlakyWorkflow, retry_policy=FAST)
hopeless_runner = DurableWorkflowRunner(HopelessWorkflow)


@workflow
async def li_flaky(ctx: WorkflowContext) -> Any:
    return await flaky_runner.run(ctx)


@workflow
async def li_hopeless(ctx: WorkflowContext) -> Any:
    try:
        return await hopeless_runner.run(ctx)
    except WorkflowExecutionError as exc:
        return _failure(exc)


async def test_a_failing_step_is_retried_and_its_failed_attempts_leave_nothing(
    db_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    app = make_app(db_url)
    await app.initialize()
    iid = await li_flaky.start()
    assert await _result(app, iid) == {"attempt": 3, "seen": 0}
    records = await _journal(db_url, iid)
    (done,) = [r for r in records if isinstance(r, ActivityCompleted)]
    assert (done.position, done.attempts) == ("FlakyWorkflow.charge:1", 3)


async def test_a_step_retry_policy_is_honoured_and_failure_names_the_step(
    sqlite_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_hopeless.start()
    result = await _result(app, iid)
    assert result["step"] == "call_api" and result["cause"] == "RetryExhaustedError"
    assert result["message"].startswith("Step 'call_api' failed:")
    assert "TimeoutError: attempt 2 timed out" in result["message"]
    assert CALLS["call_api"] == 2
    (failed,) = [r for r in await _journal(sqlite_url, iid) if isinstance(r, ActivityFailed)]
    assert failed.attempts == 2


async def _journal(db_url: str, instance_id: str) -> list[Any]:
    db = Database.open(db_url)
    try:
        return [r.entry for r in await read_journal(db, instance_id)]
    finally:
        await db.dispose()


# -- fan-out, send_event, collect_events and the store ----------------------------------------


class Work(Event):
    n: int


class Done(Event):
    n: int
    square: int


class Note(Event):
    text: str


class FanOutWorkflow(Workflow):
    @step
    async def fan_out(self, ctx: Context, ev: StartEvent) -> Work | None:
        for n in range(1, ev.count + 1):
            ctx.send_event(Work(n=n))
        ctx.send_event(Note(text="for the scribe only"), step="scribe")
        return None

    @step
    async def work(self, ev: Work) -> Done:
        CALLS[f"work{ev.n}"] += 1
        return Done(n=ev.n, square=ev.n * ev.n)

    @step
    async def audit(self, ctx: Context, ev: Work) -> None:
        async with ctx.store.edit_state() as state:
            state["audited"] = [*state.get("audited", []), ev.n]

    @step
    async def scribe(self, ctx: Context, ev: Note) -> None:
        await ctx.store.set("note", ev.text)

    @step
    async def gather(self, ctx: Context, ev: Done) -> StopEvent | None:
        CALLS[f"gather{ev.n}"] += 1
        key = f"gather-{ev.n}"
        if key in GATES:
            await GATES[key].hold()
        done = ctx.collect_events(ev, [Done, Done, Done])
        if done is None:
            return None
        return StopEvent(result={
            "squares": [d.square for d in done],
            "audited": await ctx.store.get("audited"),
            "note": await ctx.store.get("note"),
        })


fan_runner = DurableWorkflowRunner(FanOutWorkflow)


@workflow
async def li_fan_out(ctx: WorkflowContext) -> Any:
    return await fan_runner.run(ctx, count=3)


EXPECTED_FAN_OUT = {"squares": [1, 4, 9], "audited": [1, 2, 3], "note": "for the scribe only"}


async def test_an_event_reaches_every_step_that_takes_it(db_url: str, make_app: MakeApp) -> None:
    CALLS.clear()
    app = make_app(db_url)
    await app.initialize()
    iid = await li_fan_out.start()
    assert await _result(app, iid) == EXPECTED_FAN_OUT
    assert await _steps(app, iid) == [
        "FanOutWorkflow.fan_out:1",
        "FanOutWorkflow.audit:1", "FanOutWorkflow.work:1",  # Work(1): both takers, by name
        "FanOutWorkflow.audit:2", "FanOutWorkflow.work:2",
        "FanOutWorkflow.audit:3", "FanOutWorkflow.work:3",
        "FanOutWorkflow.scribe:1",  # the targeted Note
        "FanOutWorkflow.gather:1", "FanOutWorkflow.gather:2", "FanOutWorkflow.gather:3"]
    results = {r.position: r.result for r in await _journal(db_url, iid)
               if isinstance(r, ActivityCompleted)}
    added = results["FanOutWorkflow.gather:2"]["buffers"]
    assert [(b["key"], b["event"]["fields"]["n"]) for b in added] == [("default", 2)], \
        "a collected event is journaled once, not with the whole buffer"
    assert results["FanOutWorkflow.gather:3"]["buffers"] == [{"key": "default"}]


async def test_store_and_collected_events_survive_a_restart(
    sqlite_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    before: Counter[str] = Counter()
    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "gather-2",
                                          li_fan_out.start, between=lambda: before.update(CALLS))
    (inst,) = (await app2.find_instances(workflow_name="li_fan_out"))["instances"]
    assert await _result(app2, inst["instance_id"]) == EXPECTED_FAN_OUT
    assert before == {"work1": 1, "work2": 1, "work3": 1, "gather1": 1, "gather2": 1}
    assert CALLS - before == {"gather2": 1, "gather3": 1}, \
        "only the step in flight at the restart ran again"


class Tally(BaseModel):
    count: int = 0
    names: list[str] = []


class TypedStateWorkflow(Workflow):
    @step
    async def first(self, ctx: Context[Tally], ev: StartEvent) -> Note:
        async with ctx.store.edit_state() as state:
            state.count += 1
            state.names.append("first")
        return Note(text="next")

    @step
    async def second(self, ctx: Context[Tally], ev: Note) -> DurableSleepEvent:
        await ctx.store.set("count", await ctx.store.get("count") + 10)
        return DurableSleepEvent(seconds=0.05)

    @step
    async def third(self, ctx: Context[Tally], ev: ResumeEvent) -> StopEvent:
        state = await ctx.store.get_state()
        return StopEvent(result={"type": type(state).__name__, **state.model_dump()})


typed_runner = DurableWorkflowRunner(TypedStateWorkflow)


@workflow
async def li_typed_state(ctx: WorkflowContext) -> Any:
    return await typed_runner.run(ctx)


async def test_typed_state_persists_across_steps(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_typed_state.start()
    assert await _result(app, iid) == {"type": "Tally", "count": 11, "names": ["first"]}


class ClearingWorkflow(Workflow):
    @step
    async def fill(self, ctx: Context, ev: StartEvent) -> Note:
        await ctx.store.set("a", 1)
        await ctx.store.set("b", {"nested": [1, 2]})
        return Note(text="clear")

    @step
    async def clear(self, ctx: Context, ev: Note) -> DurableSleepEvent:
        await ctx.store.clear()
        await ctx.store.set("c", 3)
        return DurableSleepEvent(seconds=0.2)

    @step
    async def read(self, ctx: Context, ev: ResumeEvent) -> StopEvent:
        CALLS["read"] += 1
        state = await ctx.store.get_state()
        return StopEvent(result=dict(state.items()))


clearing_runner = DurableWorkflowRunner(ClearingWorkflow)


@workflow
async def li_clearing(ctx: WorkflowContext) -> Any:
    return await clearing_runner.run(ctx)


async def test_store_changes_are_journaled_as_changes_and_replay_exactly(
    sqlite_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_clearing.start()
    await app.shutdown()  # asleep; the next node replays fill and clear from the journal
    app2 = make_app(sqlite_url)
    await app2.initialize()
    assert await _result(app2, iid) == {"c": 3}
    assert CALLS["read"] == 1
    results = {r.position: r.result for r in await _journal(sqlite_url, iid)
               if isinstance(r, ActivityCompleted)}
    assert results["ClearingWorkflow.fill:1"]["state"] == {
        "set": {"a": 1, "b": {"nested": [1, 2]}}, "unset": []}
    assert results["ClearingWorkflow.clear:1"]["state"] == {"set": {"c": 3}, "unset": ["a", "b"]}
    assert "state" not in results["ClearingWorkflow.read:1"], "reading changes nothing"


# -- sync steps, free functions, list returns, streaming --------------------------------------


class Item(Event):
    n: int


class Squared(Event):
    n: int
    square: int


class SplitWorkflow(Workflow):
    @step
    def split(self, ctx: Context, ev: StartEvent) -> list[Item]:
        CALLS["split_in_thread"] += threading.current_thread() is not threading.main_thread()
        return [Item(n=n) for n in ev.numbers]

    @step
    async def square(self, ctx: Context, ev: Item) -> Squared:
        ctx.write_event_to_stream(ev)
        return Squared(n=ev.n, square=ev.n * ev.n)


@step(workflow=SplitWorkflow)
async def total(ctx: Context, ev: Squared) -> StopEvent | None:
    done = ctx.collect_events(ev, [Squared] * 3)
    if done is None:
        return None
    return StopEvent(result={"squares": [d.square for d in done],
                             "instance": ctx.edda.workflow_name})


STREAMED: list[Event] = []
split_runner = DurableWorkflowRunner(SplitWorkflow, on_stream_event=STREAMED.append)


@workflow
async def li_split(ctx: WorkflowContext) -> Any:
    return await split_runner.run(ctx, start_event=StartEvent(numbers=[2, 3, 4]))


async def test_sync_steps_free_functions_list_returns_and_streaming(
    sqlite_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    STREAMED.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_split.start()
    assert await _result(app, iid) == {"squares": [4, 9, 16], "instance": "li_split"}
    assert CALLS["split_in_thread"] == 1, "a sync step runs in a worker thread"
    assert [(type(e), e.n) for e in STREAMED] == [(Item, 2), (Item, 3), (Item, 4)]
    assert (await _steps(app, iid))[:2] == ["SplitWorkflow.split:1", "SplitWorkflow.square:1"]


# -- resources and custom stop events ----------------------------------------------------------


class Receipt(StopEvent):
    total: float


def make_client() -> dict[str, str]:
    CALLS["make_client"] += 1
    return {"name": "pricing-client"}


class ResourceWorkflow(Workflow):
    @step
    async def price(self, ev: StartEvent,
                    client: Annotated[dict[str, str], Resource(make_client)]) -> Receipt:
        return Receipt(total=ev.qty * 2.5, result=client["name"])


resource_runner = DurableWorkflowRunner(ResourceWorkflow)


@workflow
async def li_resources(ctx: WorkflowContext) -> Any:
    receipt = await resource_runner.run(ctx, qty=4)
    return {"type": type(receipt).__name__, "total": receipt.total, "result": receipt.result}


async def test_resources_are_injected_and_a_stop_event_subclass_is_the_result(
    sqlite_url: str, make_app: MakeApp
) -> None:
    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    first, second = await li_resources.start(), await li_resources.start()
    for iid in (first, second):
        assert await _result(app, iid) == {"type": "Receipt", "total": 10.0,
                                           "result": "pricing-client"}
    assert CALLS["make_client"] == 1, "a cached resource is made once per runner"


# -- clear errors --------------------------------------------------------------------------------


class Unstorable(Event):
    payload: Any


class BadOutputWorkflow(Workflow):
    @step
    async def emit(self, ctx: Context, ev: StartEvent) -> Unstorable | StopEvent:
        CALLS["emit"] += 1
        if ev.where == "store":
            await ctx.store.set("connection", threading.Lock())
            return StopEvent(result="unreachable")
        if ev.where == "event":
            return Unstorable(payload=threading.Lock())
        if ev.where == "orphan":
            return Unstorable(payload=1)  # no step takes it
        if ev.where == "target":
            ctx.send_event(Note(text="x"), step="nowhere")
        if ev.where == "wait":
            await ctx.wait_for_event(Note)
        return None  # runs out of events

    @step
    async def never(self, ev: Note) -> StopEvent:
        return StopEvent(result=ev.text)


bad_runner = DurableWorkflowRunner(BadOutputWorkflow, retry_policy=FAST)


@workflow
async def li_bad_output(ctx: WorkflowContext, where: str) -> Any:
    try:
        return await bad_runner.run(ctx, where=where)
    except WorkflowExecutionError as exc:
        return _failure(exc)


@pytest.mark.parametrize(("where", "step_name", "says"), [
    ("event", "emit", "field 'payload' of the Unstorable returned by step 'emit' is a "
                      "_thread.lock, which cannot be stored in the journal"),
    ("store", "emit", "store key 'connection' set by step 'emit' is a _thread.lock"),
    ("target", "emit", "ctx.send_event(..., step='nowhere') in step 'emit': the workflow has "
                       "no such step"),
    ("wait", "emit", "ctx.wait_for_event() in step 'emit' cannot be made durable"),
    ("orphan", None, "No step of BadOutputWorkflow takes Unstorable"),
    ("none", None, "BadOutputWorkflow ran out of events without a StopEvent"),
])
async def test_unusable_output_is_a_clear_error_and_is_not_retried(
    sqlite_url: str, make_app: MakeApp, where: str, step_name: str | None, says: str
) -> None:
    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_bad_output.start(where=where)
    result = await _result(app, iid)
    assert result["step"] == step_name
    assert says in result["message"], result["message"]
    assert CALLS["emit"] == 1, "a deterministic mistake is not retried"


class CatchingWorkflow(Workflow):
    @step
    async def start(self, ev: StartEvent) -> StopEvent:
        return StopEvent()

    @catch_error
    async def recover(self, ev: StepFailedEvent) -> StopEvent:
        return StopEvent()


class TwoEventsWorkflow(Workflow):
    @step
    async def start(self, ev: StartEvent) -> Work | Note:
        return Note(text="x")

    @step
    async def both(self, a: Work, b: Note) -> StopEvent:
        return StopEvent()


class CrowdedWorkflow(Workflow):
    @step
    async def start(self, ctx, extra, ev: StartEvent) -> StopEvent:
        return StopEvent()


def test_unsupported_workflows_are_refused_when_the_runner_is_built() -> None:
    with pytest.raises(TypeError, match="Expected a Workflow subclass, got <class 'int'>"):
        DurableWorkflowRunner(int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step 'recover' of CatchingWorkflow is a @catch_error"):
        DurableWorkflowRunner(CatchingWorkflow)
    with pytest.raises(ValueError, match="step 'both' of TwoEventsWorkflow collects several"):
        DurableWorkflowRunner(TwoEventsWorkflow)
    with pytest.raises(ValueError, match="has parameters ctx, extra the runner cannot fill"):
        DurableWorkflowRunner(CrowdedWorkflow)


async def test_run_outside_a_workflow_is_refused() -> None:
    with pytest.raises(TypeError, match="must be called inside a workflow"):
        await flaky_runner.run(object())  # type: ignore[arg-type]


def test_a_runner_takes_a_workflow_instance() -> None:
    runner = DurableWorkflowRunner(FanOutWorkflow(timeout=5))
    assert runner.workflow_class is FanOutWorkflow
    assert runner.step_names == ["audit", "fan_out", "gather", "scribe", "work"]


# -- a real crash ------------------------------------------------------------------------------


def test_sigkill_after_step_2_of_4_resumes_without_rerunning(db_url: str, tmp_path: Path) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(step INTEGER, pid INTEGER)")
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db), "EDDA_BLOCK_AT": "3"}
    child = SUPPORT / "llamaindex_child.py"
    kill_at_line(child, ["start", db_url], env, "blocking in step 3")
    del env["EDDA_BLOCK_AT"]
    recovered = subprocess.run([sys.executable, str(child), "recover", db_url], env=env,
                               capture_output=True, text=True, timeout=90, check=False)
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout) == {
        "label": "LBL-S-1", "trail": ["pack", "label", "hand_over", "confirm"]}

    with sqlite3.connect(side_db) as side:
        runs = list(side.execute("SELECT step, pid FROM runs ORDER BY rowid"))
    counts = Counter(n for n, _ in runs)
    assert counts == {1: 1, 2: 1, 3: 2, 4: 1}, "steps 1 and 2 finished before the kill"
    assert len({pid for n, pid in runs if n in (1, 2)}) == 1
    positions = asyncio.run(_completed_positions(db_url))
    assert positions == ["ShippingWorkflow.pack:1", "ShippingWorkflow.label:1",
                         "ShippingWorkflow.hand_over:1", "ShippingWorkflow.confirm:1"]


async def _completed_positions(db_url: str) -> list[str]:
    db = Database.open(db_url)
    try:
        (row,) = await SqlJournalStore(db, None).list_rows(InstanceFilter(workflow_name="shipping"),
                                          limit=10, after=None)
        return [r.entry.position for r in await read_journal(db, row["instance_id"])
                if isinstance(r.entry, ActivityCompleted)]
    finally:
        await db.dispose()


def test_the_integration_exports_what_all_says() -> None:
    import edda.integrations.llamaindex as integration

    public = {name for name, value in vars(integration).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(integration.__all__)
    assert {"DurableWorkflowRunner", "DurableSleepEvent", "DurableWaitEvent", "ResumeEvent",
            "WorkflowExecutionError", "WorkflowReplayError"} <= public


async def test_a_store_value_a_replay_cannot_rebuild_fails_without_retries(
    sqlite_url: str, make_app: MakeApp
) -> None:
    class LocalModel(BaseModel):  # cannot be imported by name
        x: int

    class LocalStoreWorkflow(Workflow):
        @step
        async def put(self, ctx: Context, ev: StartEvent) -> Note:
            await ctx.store.set("model", LocalModel(x=1))
            return Note(text="next")

        @step
        async def take(self, ctx: Context, ev: Note) -> StopEvent:
            CALLS["take"] += 1
            return StopEvent(result=await ctx.store.get("model"))

    local_runner = DurableWorkflowRunner(LocalStoreWorkflow, retry_policy=FAST)

    @workflow
    async def li_local_store(ctx: WorkflowContext) -> Any:
        try:
            return await local_runner.run(ctx)
        except WorkflowExecutionError as exc:
            return _failure(exc)

    CALLS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await li_local_store.start()
    result = await _result(app, iid)
    assert result["step"] == "take" and result["cause"] == "WorkflowReplayError"
    assert "store key 'model' cannot be restored" in result["message"], result["message"]
    assert CALLS["take"] == 0, "the step never ran: its state could not be rebuilt"
    (failed,) = [r for r in await _journal(sqlite_url, iid) if isinstance(r, ActivityFailed)]
    assert failed.attempts == 1, "reading the same record again would fail again"
