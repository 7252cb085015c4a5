"""Durable pydantic-graph graphs: real pydantic-graph graphs run node by node by Edda."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from pydantic_graph import BaseNode, End, GraphBuilder, GraphRunContext

from edda import (
    EddaApp,
    EventTimeoutError,
    RetryPolicy,
    WorkflowContext,
    send_event,
    wait_event,
    workflow,
)
from edda.integrations.graph import (
    DurableGraph,
    DurableGraphContext,
    GraphExecutionError,
    ReceivedEvent,
    Sleep,
    WaitForEvent,
)
from edda.journal.database import Database
from edda.journal.entries import ActivityCompleted, ActivityFailed
from edda.journal.store import InstanceFilter, SqlJournalStore, read_journal
from edda.testing import MockClock, is_resident, passivate_idle
from tests.support.gates import finished, wait_until
from tests.support.processes import kill_at_line
from tests.support.web import serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
SUPPORT = Path(__file__).parent / "support"
FAST = RetryPolicy(initial_interval=0.01, backoff_coefficient=1.0, max_attempts=4)
RUNS: Counter[str] = Counter()


async def _result(app: EddaApp, instance_id: str) -> Any:
    inst = await finished(app, instance_id, timeout=20.0)
    assert inst["status"] == "completed", inst["output_data"]
    return inst["output_data"]["result"]


async def _positions(app: EddaApp, instance_id: str) -> list[str]:
    return [h["activity_id"] for h in await app.get_history(instance_id)
            if h["event_type"] in ("ActivityCompleted", "ActivityFailed", "WaitStarted")]


async def _entries(app: EddaApp, instance_id: str) -> list[Any]:
    return [r.entry for r in await read_journal(app.database, instance_id)]


# -- an order: state, deps, a wait for a CloudEvent ----------------------------------------------


@dataclass
class OrderState:
    order_id: str = ""
    total: float = 0.0
    steps: list[str] = field(default_factory=list)
    approved_by: str | None = None


class Pricing:
    """The graph's deps: a live object the journal never sees (it holds a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prices = {"tea": 3.5, "cake": 4.25}

    def price(self, sku: str) -> float:
        with self.lock:
            return self.prices[sku]


PRICING = Pricing()


@dataclass
class Validate(BaseNode[OrderState, Pricing, dict[str, Any]]):
    order_id: str
    skus: list[str]

    async def run(self, ctx: GraphRunContext[OrderState, Pricing]) -> PriceOrder:
        RUNS["validate"] += 1
        ctx.state.order_id = self.order_id
        ctx.state.steps.append("validate")
        return PriceOrder(skus=self.skus)


@dataclass
class PriceOrder(BaseNode[OrderState, Pricing, dict[str, Any]]):
    skus: list[str]

    # Naming Ship beside the marker makes it reachable for the graph builder's checks.
    async def run(self, ctx: GraphRunContext[OrderState, Pricing]) -> WaitForEvent | Ship:
        RUNS["price"] += 1
        ctx.state.total = sum(ctx.deps.price(sku) for sku in self.skus)
        ctx.state.steps.append("price")
        return WaitForEvent(f"approval.{ctx.state.order_id}", Ship(), timeout_seconds=600)


@dataclass
class Ship(BaseNode[OrderState, Pricing, dict[str, Any]]):
    async def run(self, ctx: DurableGraphContext[OrderState, Pricing]) -> End[dict[str, Any]]:
        RUNS["ship"] += 1
        event = ctx.last_event
        assert isinstance(event, ReceivedEvent)
        ctx.state.approved_by = event.data["by"]
        ctx.state.steps.append("ship")
        return End({"order_id": ctx.state.order_id, "total": ctx.state.total,
                    "event": [event.event_type, event.metadata.get("channel")],
                    "instance": ctx.instance_id == ctx.workflow_ctx.instance_id})


order_builder = GraphBuilder(state_type=OrderState, deps_type=Pricing, output_type=dict)
order_builder.add(
    order_builder.edge_from(order_builder.start_node).to(Validate),
    order_builder.node(Validate),
    order_builder.node(PriceOrder),
    order_builder.node(WaitForEvent),
    order_builder.node(Ship),
)
order_graph = DurableGraph(order_builder.build(), name="order")


@workflow
async def order_flow(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    state = OrderState()
    result = await order_graph.run(ctx, Validate(order_id, ["tea", "cake"]), state=state,
                                   deps=PRICING)
    return {"result": result, "state": dataclasses.asdict(state)}


async def _post_approval(app: EddaApp, order_id: str) -> None:
    event = {"specversion": "1.0", "id": f"ok-{order_id}", "type": f"approval.{order_id}",
             "source": "/managers", "channel": "web", "data": {"by": "ada"}}
    async with serve(app) as base, httpx.AsyncClient() as client:
        response = await client.post(base, json=event,
                                     headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 202, response.text


async def test_a_graph_with_state_and_deps_waits_for_a_cloudevent(
    db_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    app = make_app(db_url)
    await app.initialize()
    iid = await order_flow.start(order_id="o-1")
    inst = await app.get_instance(iid)
    assert inst is not None and inst["status"] == "waiting_for_message"
    await _post_approval(app, "o-1")
    result = await _result(app, iid)
    assert result["result"] == {"order_id": "o-1", "total": 7.75, "event": ["approval.o-1", "web"],
                                "instance": True}
    assert result["state"] == {"order_id": "o-1", "total": 7.75, "approved_by": "ada",
                               "steps": ["validate", "price", "ship"]}
    assert RUNS == {"validate": 1, "price": 1, "ship": 1}
    assert await _positions(app, iid) == ["order.Validate:1", "order.PriceOrder:1",
                                          "receive_approval.o-1:1", "order.Ship:1"]
    done = {e.position: e for e in await _entries(app, iid) if isinstance(e, ActivityCompleted)}
    # What a node returned and the state after it are journaled as data.
    assert done["order.Validate:1"].result == {
        "then": {"node": "PriceOrder", "fields": {"skus": ["tea", "cake"]}},
        "state": {"order_id": "o-1", "total": 0.0, "steps": ["validate"], "approved_by": None}}
    assert done["order.PriceOrder:1"].result["then"]["wait"] == "approval.o-1"


async def test_a_restart_replays_finished_nodes_and_restores_the_state(
    sqlite_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await order_flow.start(order_id="o-2")
    await app.shutdown()  # the new node knows the state only from the journal

    app2 = make_app(sqlite_url)
    await app2.initialize()
    await send_event("approval.o-2", "/managers", {"by": "ada"})
    result = await _result(app2, iid)
    assert result["state"] == {"order_id": "o-2", "total": 7.75, "approved_by": "ada",
                               "steps": ["validate", "price", "ship"]}
    assert RUNS == {"validate": 1, "price": 1, "ship": 1}, "no node ran twice"


# -- a durable sleep, fired by a mock clock, with the worker freed -------------------------------

DAY = 86400


@dataclass
class Remind(BaseNode[dict[str, Any], None, str]):
    who: str

    async def run(self, ctx: GraphRunContext[dict[str, Any], None]) -> Sleep | Nudge:
        RUNS["remind"] += 1
        ctx.state["who"] = self.who
        return Sleep(3 * DAY, Nudge(times=1))


@dataclass
class Nudge(BaseNode[dict[str, Any], None, str]):
    times: int

    async def run(self, ctx: GraphRunContext[dict[str, Any], None]) -> WaitForEvent | End[str]:
        RUNS["nudge"] += 1
        if self.times == 1:
            return WaitForEvent("reply", End("never"), timeout_seconds=DAY)
        return End(f"nudged {ctx.state['who']}")


reminder_builder = GraphBuilder(state_type=dict, output_type=str)
reminder_builder.add(
    reminder_builder.edge_from(reminder_builder.start_node).to(Remind),
    reminder_builder.node(Remind),
    reminder_builder.node(Nudge),
    reminder_builder.node(Sleep),
    reminder_builder.node(WaitForEvent),
)
reminder_graph = DurableGraph(reminder_builder.build())


@workflow
async def reminder(ctx: WorkflowContext) -> dict[str, Any]:
    state: dict[str, Any] = {}
    try:
        return {"result": await reminder_graph.run(ctx, Remind("bob"), state=state)}
    except EventTimeoutError as exc:
        return {"timed_out": str(exc), "state": state}


async def test_sleep_and_wait_suspend_durably_and_free_the_worker(
    sqlite_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    clock = MockClock()
    app = make_app(sqlite_url, clock=clock)
    await app.initialize()
    iid = await reminder.start()
    inst = await app.get_instance(iid)
    assert inst is not None and inst["status"] == "waiting_for_timer"
    passivate_idle(app)
    await wait_until(lambda: not is_resident(app, iid), "the sleeping instance to leave memory")

    clock.advance(3 * DAY)  # the timer fires: the instance comes back by replay

    async def waits_for_reply() -> bool:
        inst = await app.get_instance(iid)
        return inst is not None and inst["status"] == "waiting_for_message"

    await wait_until(waits_for_reply, "the wait after the node after the sleep")
    assert RUNS == {"remind": 1, "nudge": 1}, "the node before the sleep was not run again"

    clock.advance(DAY)  # no reply within a day
    result = await _result(app, iid)
    assert result == {"timed_out": "Event 'reply' did not arrive within 86400 seconds",
                      "state": {"who": "bob"}}
    assert await _positions(app, iid) == ["graph.Remind:1", "sleep:1", "graph.Nudge:1",
                                          "receive_reply:1"]


# -- state of every kind, restored in place ------------------------------------------------------


class Tally(BaseModel):
    count: int = 0
    seen: list[str] = []


@dataclass
class Count(BaseNode[Any, None, Any]):
    word: str

    async def run(self, ctx: GraphRunContext[Any, None]) -> Count | End[Any]:
        state = ctx.state
        if isinstance(state, dict):
            state["count"] = state.get("count", 0) + 1
            state.setdefault("seen", []).append(self.word)
            count = state["count"]
        else:
            state.count += 1
            state.seen.append(self.word)
            count = state.count
        return End(count) if count == 2 else Count(self.word.upper())


@dataclass
class TallyState:
    count: int = 0
    seen: list[str] = field(default_factory=list)


count_builder = GraphBuilder(output_type=int)
count_builder.add(count_builder.edge_from(count_builder.start_node).to(Count),
                  count_builder.node(Count))
count_graph = DurableGraph(count_builder.build(), retry_policy=FAST)


@workflow
async def counts(ctx: WorkflowContext, kind: str) -> dict[str, Any]:
    state: Any = {"tally": Tally(), "dataclass": TallyState(), "dict": {}}[kind]
    before = id(state)
    result = await count_graph.run(ctx, Count("a"), state=state)
    seen = state["seen"] if isinstance(state, dict) else state.seen
    return {"result": result, "seen": seen, "same_object": id(state) == before}


@pytest.mark.parametrize("kind", ["tally", "dataclass", "dict"])
async def test_state_of_every_kind_is_restored_into_the_callers_object(
    sqlite_url: str, make_app: MakeApp, kind: str
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await counts.start(kind=kind)
    assert await _result(app, iid) == {"result": 2, "seen": ["a", "A"], "same_object": True}


@workflow
async def counts_then_waits(ctx: WorkflowContext) -> dict[str, Any]:
    state = TallyState()
    await count_graph.run(ctx, Count("a"), state=state)
    await wait_event(ctx, "count.go")  # a restart here replays the whole graph
    return dataclasses.asdict(state)


async def test_a_replayed_graph_leaves_the_journaled_state_in_the_callers_object(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await counts_then_waits.start()
    await app.shutdown()
    app2 = make_app(sqlite_url)
    await app2.initialize()
    await send_event("count.go", "test", {})
    assert await _result(app2, iid) == {"count": 2, "seen": ["a", "A"]}


# -- failures ------------------------------------------------------------------------------------


@dataclass
class Flaky(BaseNode[TallyState, None, Any]):
    async def run(self, ctx: GraphRunContext[TallyState, None]) -> End[Any]:
        RUNS["flaky"] += 1
        ctx.state.seen.append(f"attempt {RUNS['flaky']}")  # undone when the attempt fails
        if RUNS["flaky"] < 3:
            raise ConnectionError("partner down")
        return End(list(ctx.state.seen))


@dataclass
class Explode(BaseNode[TallyState, None, Any]):
    async def run(self, ctx: GraphRunContext[TallyState, None]) -> End[Any]:
        RUNS["explode"] += 1
        raise ValueError("boom")


@dataclass
class Stash(BaseNode[Any, None, Any]):
    what: str

    async def run(self, ctx: GraphRunContext[Any, None]) -> Carry | End[Any]:
        RUNS["stash"] += 1
        if self.what == "state":
            ctx.state.note = threading.Lock()
            return End(None)
        if self.what == "node":
            return Carry(payload=threading.Lock())
        return Stranger()


@dataclass
class Carry(BaseNode[Any, None, Any]):
    payload: Any

    async def run(self, ctx: GraphRunContext[Any, None]) -> End[Any]:
        return End(None)


@dataclass
class Stranger(BaseNode[Any, None, Any]):
    async def run(self, ctx: GraphRunContext[Any, None]) -> End[Any]:
        return End(None)


@dataclass
class NoteState:
    note: Any = None


failing_builder = GraphBuilder()
failing_builder.add(
    failing_builder.edge_from(failing_builder.start_node).to(Flaky),
    failing_builder.node(Flaky),
    failing_builder.node(Explode),
    failing_builder.node(Stash),
    failing_builder.node(Carry),
)
failing_graph = DurableGraph(failing_builder.build(validate_graph_structure=False),
                             name="failing", retry_policy=FAST)


@workflow
async def failing(ctx: WorkflowContext, start: str) -> dict[str, Any]:
    node: BaseNode[Any, None, Any] = {
        "flaky": Flaky(), "explode": Explode(), "state": Stash("state"), "node": Stash("node"),
        "stranger": Stash("stranger")}[start]
    state: Any = NoteState() if start == "state" else TallyState()
    try:
        return {"result": await failing_graph.run(ctx, node, state=state)}
    except GraphExecutionError as exc:
        return {"node": exc.node_name, "message": str(exc),
                "cause": type(exc.__cause__).__name__}


async def test_a_failing_node_is_retried_from_the_journaled_state(
    sqlite_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await failing.start(start="flaky")
    assert await _result(app, iid) == {"result": ["attempt 3"]}, (
        "the failed attempts' state changes are gone")
    (done,) = [e for e in await _entries(app, iid) if isinstance(e, ActivityCompleted)]
    assert done.attempts == 3


async def test_a_node_that_keeps_failing_raises_graph_execution_error_naming_it(
    sqlite_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await failing.start(start="explode")
    result = await _result(app, iid)
    assert result["node"] == "Explode" and result["cause"] == "RetryExhaustedError"
    assert result["message"].startswith("Node 'Explode' failed: Activity failing.Explode failed "
                                        "after 4 attempts")
    assert "(last error: ValueError: boom)" in result["message"]
    assert RUNS["explode"] == 4


@pytest.mark.parametrize(("start", "expected"), [
    ("state", "state field 'note' after node 'Stash'"),
    ("node", "field 'payload' of node Carry (what node 'Stash' returned)"),
    ("stranger", "node Stranger, which is not a node of the graph"),
])
async def test_what_cannot_be_journaled_is_a_clear_error_and_is_not_retried(
    sqlite_url: str, make_app: MakeApp, start: str, expected: str
) -> None:
    RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await failing.start(start=start)
    result = await _result(app, iid)
    assert result["node"] == "Stash" and result["cause"] == "TerminalError"
    assert expected in result["message"], result["message"]
    assert RUNS["stash"] == 1, "the same output would fail again"
    (failed,) = [e for e in await _entries(app, iid) if isinstance(e, ActivityFailed)]
    assert failed.attempts == 1


@workflow
async def bad_start(ctx: WorkflowContext, what: str) -> str:
    try:
        if what == "node":
            await failing_graph.run(ctx, Carry(payload=threading.Lock()), state=None)
        else:
            await failing_graph.run(ctx, Flaky(), state=threading.Lock())
    except TypeError as exc:
        return str(exc)
    return "ran"


async def test_bad_input_is_refused_before_anything_runs(
    sqlite_url: str, make_app: MakeApp
) -> None:
    RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    message = await _result(app, await bad_start.start(what="node"))
    assert "field 'payload' of node Carry (the start node)" in message
    message = await _result(app, await bad_start.start(what="state"))
    assert "state must be a dataclass instance, a pydantic model, a dict or None" in message
    assert RUNS["flaky"] == 0
    with pytest.raises(TypeError, match="inside a workflow"):
        await failing_graph.run(None, Flaky(), state=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"builder\.build\(\)"):
        DurableGraph(GraphBuilder())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seconds"):
        Sleep(-1, Flaky())
    with pytest.raises(TypeError, match="next_node"):
        WaitForEvent("x", "not a node")  # type: ignore[arg-type]


async def test_markers_are_not_runnable_nodes() -> None:
    for marker in (Sleep(1, End(None)), WaitForEvent("x", End(None))):
        with pytest.raises(RuntimeError, match="marker for DurableGraph"):
            await marker.run(GraphRunContext(state=None, deps=None))


def test_the_integration_exports_what_all_says() -> None:
    import edda.integrations.graph as integration

    public = {name for name, value in vars(integration).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(integration.__all__)
    assert GraphExecutionError.__module__ == "edda.integrations.graph"
    assert order_graph.graph is not None
    assert sorted(order_graph.node_names) == ["PriceOrder", "Ship", "Validate"]


# -- a real crash ----------------------------------------------------------------------------------


def test_sigkill_mid_graph_resumes_without_rerunning_finished_nodes(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'edda.db'}"
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(node INTEGER, pid INTEGER)")
    env = {**os.environ, "EDDA_SIDE_DB": str(side_db), "EDDA_BLOCK_AT": "3"}
    child = SUPPORT / "graph_child.py"
    kill_at_line(child, ["start", db_url], env, "blocking in node 3")
    del env["EDDA_BLOCK_AT"]
    recovered = subprocess.run([sys.executable, str(child), "recover", db_url], env=env,
                               capture_output=True, text=True, timeout=90, check=False)
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout) == {
        "label": "LBL-S-1", "trail": ["pack", "label", "hand_over", "confirm"]}

    with sqlite3.connect(side_db) as side:
        runs = list(side.execute("SELECT node, pid FROM runs ORDER BY rowid"))
    assert Counter(n for n, _ in runs) == {1: 1, 2: 1, 3: 2, 4: 1}, (
        "nodes 1 and 2 finished before the kill")
    assert len({pid for n, pid in runs if n in (1, 2)}) == 1
    assert _completed_positions(db_url) == [
        "shipping.Pack:1", "shipping.Label:1", "shipping.HandOver:1", "shipping.Confirm:1"]


def _completed_positions(db_url: str) -> list[str]:
    import asyncio

    async def read() -> list[str]:
        db = Database.open(db_url)
        try:
            (row,) = await SqlJournalStore(db, None).list_rows(
                InstanceFilter(workflow_name="shipping"), limit=10, after=None)
            return [r.entry.position for r in await read_journal(db, row["instance_id"])
                    if isinstance(r.entry, ActivityCompleted)]
        finally:
            await db.dispose()

    return asyncio.run(read())


EXAMPLE = Path(__file__).parent.parent / "examples" / "graph_order.py"


def test_the_example_survives_the_kill_and_runs_each_node_once(tmp_path: Path) -> None:
    env = {**os.environ, "EDDA_DEMO_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLE)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "B-2 waits for approval" in out and "killed with SIGKILL" in out
    assert "-> completed: {'order_id': 'B-2', 'status': 'shipped', 'payment': 'pay-B-2'}" in out
    # Shipped by the fresh node, from the state the killed one left in the journal.
    assert "shipped espresso-machine for B-2" in out
    assert "charged 1299.00 EUR (approved by maria) for B-2" in out
    assert out.rstrip().endswith("Every completed node ran exactly once.")
    assert done.stderr == "", "the example runs without warnings"
