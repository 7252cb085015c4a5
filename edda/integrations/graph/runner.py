"""`DurableGraph`: a pydantic-graph graph run inside an Edda workflow, node by node.

The runner walks the graph itself, one node at a time, from what the journal
holds:

- every node run is an Edda activity named ``"{graph}.{NodeId}"``; its journaled
  result holds what the node returned (the next node with its fields, an `End`,
  or a `Sleep` / `WaitForEvent`) and the graph state after it;
- the workflow body only decodes those results, so a replay restores the state
  into the caller's object after every node and re-runs no finished node;
- `Sleep` and `WaitForEvent` become `edda.sleep` and `edda.wait_event` in the
  body: the workflow is suspended durably and holds no worker meanwhile.

pydantic-graph's own runner (`Graph.iter` and `GraphRun.next`) is not used to
call a node: it gives a node a plain `GraphRunContext` that it builds itself,
while a durable node needs `DurableGraphContext` (``last_event``, the Edda
context), and it executes every node in a task group of its own that would
have to live across durable waits. The graph is used for what it defines: which
node classes exist under which ids, and `End` as the end of a run.

The ``deps`` are never journaled: they are the caller's live objects (clients,
connections), passed again by the workflow code on every run and replay.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_graph import BaseNode, End, Graph, GraphBuilder

from edda.integrations.graph.codec import NodeCodec, StateCodec
from edda.integrations.graph.context import DurableGraphContext
from edda.integrations.graph.errors import GraphExecutionError
from edda.integrations.graph.markers import ReceivedEvent
from edda.runtime.activity import Activity
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.errors import (
    NonDeterminismError,
    RetryExhaustedError,
    TerminalError,
    WorkflowCancelledException,
)
from edda.runtime.events import wait_event
from edda.runtime.serialization import NotSerializableError
from edda.runtime.timers import sleep

if TYPE_CHECKING:
    from edda.runtime.retry import RetryPolicy

@dataclass
class _Run:
    """One ``DurableGraph.run()``: the caller's objects and the journal's view of them."""

    state: StateCodec
    snapshot: Any
    deps: Any
    #: The node the activity being called runs (journal JSON).
    record: dict[str, Any]
    last_event: ReceivedEvent | None = None


_current: contextvars.ContextVar[_Run] = contextvars.ContextVar("edda_graph_run")


class DurableGraph:
    """Runs a pydantic-graph `Graph` of `BaseNode` classes durably inside an Edda ``@workflow``.

    Args:
        graph: The built graph (``GraphBuilder(...).build()``).
        name: The prefix of the node activities' names (default: the graph's
            name, else ``"graph"``).
        retry_policy: The retry policy of the node activities (default: the app's).

    Raises:
        TypeError: If ``graph`` is not a built pydantic-graph `Graph`.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if isinstance(graph, GraphBuilder):
            raise TypeError("DurableGraph needs the built graph: DurableGraph(builder.build())")
        if not isinstance(graph, Graph):
            raise TypeError(f"Expected a pydantic_graph.Graph, got {graph!r}")
        self._graph = graph
        self.name = name or graph.name or "graph"
        self._codec = NodeCodec(graph)
        self._retry_policy = retry_policy
        self._activities = {node_id: self._activity(node_id) for node_id in self._codec.classes}

    @property
    def graph(self) -> Graph:
        """The pydantic-graph graph."""
        return self._graph

    @property
    def node_names(self) -> list[str]:
        """The ids of the graph's nodes that a run can execute."""
        return list(self._codec.classes)

    async def run(
        self,
        ctx: WorkflowContext,
        start_node: BaseNode[Any, Any, Any],
        *,
        state: Any,
        deps: Any = None,
    ) -> Any:
        """Run the graph from ``start_node`` to its `End`; the `End`'s data.

        ``state`` is updated in place: after every node (also on replay) it holds
        what the journal recorded after that node.

        Raises:
            TypeError: If ``state`` is not a dataclass, pydantic model, dict or None.
            NotSerializableError: If the start node or the initial state has a
                field that cannot be journaled (a `TypeError`; names the field).
            GraphExecutionError: If a node failed for good, returned something a
                run cannot go on with, or left a state or node that cannot be
                journaled (naming the node and the field).
            edda.EventTimeoutError: If a `WaitForEvent` timed out.
        """
        require_context(ctx, "DurableGraph.run")
        codec = StateCodec(state)
        record = self._codec.encode(start_node, "the start node")
        run = _Run(state=codec, snapshot=codec.encode("at the start"), deps=deps, record=record)
        codec.restore(run.snapshot)  # the first node sees what a retry or replay would see
        while True:
            if "end" in record:
                end = self._decode(record)
                assert isinstance(end, End)
                return end.data
            if "sleep" in record:
                await sleep(ctx, record["sleep"])
                record = record["then"]
                continue
            if "wait" in record:
                received = await wait_event(ctx, record["wait"], timeout_seconds=record["timeout"])
                run.last_event = ReceivedEvent(event_type=received.type, data=received.data,
                                               metadata=dict(received.extensions))
                record = record["then"]
                continue
            record = await self._call(ctx, run, record)

    def _decode(self, record: dict[str, Any]) -> BaseNode[Any, Any, Any] | End[Any]:
        try:
            return self._codec.decode(record)
        except NotSerializableError as exc:
            raise GraphExecutionError(str(exc), record.get("node")) from exc

    async def _call(self, ctx: WorkflowContext, run: _Run,
                    record: dict[str, Any]) -> dict[str, Any]:
        """Run the node ``record`` holds as an activity; the record of what it returned."""
        name = record["node"]
        activity = self._activities.get(name)
        if activity is None:
            raise GraphExecutionError(
                f"the journal records node {name!r}, which the graph no longer has", name)
        run.record = record
        token = _current.set(run)
        try:
            outcome: dict[str, Any] = await activity(ctx)
        except (WorkflowCancelledException, NonDeterminismError):
            raise
        except Exception as exc:
            raise GraphExecutionError(f"Node {name!r} failed: {_explain(exc)}", name) from exc
        finally:
            _current.reset(token)
            run.last_event = None
        if "state" in outcome:
            run.snapshot = outcome["state"]
        try:
            run.state.restore(run.snapshot)
        except NotSerializableError as exc:
            raise GraphExecutionError(f"the state after node {name!r}: {exc}", name) from exc
        then: dict[str, Any] = outcome["then"]
        return then

    def _activity(self, node_id: str) -> Activity[..., Any]:
        runner = self

        async def run_node(ctx: WorkflowContext) -> Any:
            return await runner._execute(ctx, node_id)

        run_node.__name__ = run_node.__qualname__ = f"{self.name}.{node_id}"
        return Activity(run_node, retry_policy=self._retry_policy)

    async def _execute(self, ctx: WorkflowContext, node_id: str) -> dict[str, Any]:
        """One attempt of a node, over the state the journal holds; its result to journal."""
        run = _current.get()
        try:
            node = self._codec.decode(run.record)
            run.state.restore(run.snapshot)  # a failed attempt's changes are gone
        except NotSerializableError as exc:
            raise TerminalError(str(exc)) from exc  # reading it again would fail again
        assert isinstance(node, BaseNode)
        graph_ctx: DurableGraphContext[Any, Any] = DurableGraphContext(
            state=run.state.state, deps=run.deps, workflow_ctx=ctx, last_event=run.last_event)
        returned = await node.run(graph_ctx)
        after = f"after node {node_id!r}"
        try:
            then = self._codec.encode(returned, f"what node {node_id!r} returned")
            self._codec.decode(then)  # what a replay must rebuild
            state = run.state.encode(after)
            run.state.restore(state)
        except NotSerializableError as exc:
            raise TerminalError(str(exc)) from exc  # the same output would fail again
        outcome: dict[str, Any] = {"then": then}
        if state != run.snapshot:
            outcome["state"] = state
        return outcome


def _explain(exc: Exception) -> str:
    cause = exc.__cause__
    if isinstance(exc, RetryExhaustedError) and cause is not None:
        return f"{exc} (last error: {type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}"

