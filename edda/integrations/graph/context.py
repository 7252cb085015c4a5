"""`DurableGraphContext`: the ``ctx`` every node of a durable graph receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic_graph import GraphRunContext
from pydantic_graph.basenode import DepsT, StateT

if TYPE_CHECKING:
    from edda.integrations.graph.markers import ReceivedEvent
    from edda.runtime.context import WorkflowContext


@dataclass(kw_only=True)
class DurableGraphContext(GraphRunContext[StateT, DepsT]):
    """A pydantic-graph `GraphRunContext` that also knows the Edda run.

    Nodes annotated ``ctx: GraphRunContext[S, D]`` get it unchanged; annotate
    ``ctx: DurableGraphContext[S, D]`` to reach ``last_event``.

    Attributes:
        state: The graph state: the caller's object, as the journal holds it.
        deps: The ``deps`` given to `DurableGraph.run` (never journaled).
        workflow_ctx: The Edda context of the node's activity (``ctx.session``
            and `edda.send_event_transactional` work through it).
        last_event: The event a `WaitForEvent` received, for the node it named
            as ``next_node``; None for every other node.
    """

    workflow_ctx: WorkflowContext
    last_event: ReceivedEvent | None = None

    @property
    def instance_id(self) -> str:
        """The id of the workflow instance running the graph."""
        return self.workflow_ctx.instance_id

    @property
    def is_replaying(self) -> bool:
        """Whether the workflow is replaying its journal (a node itself only runs live)."""
        return self.workflow_ctx.is_replaying
