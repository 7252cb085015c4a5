"""Durable pydantic-graph graphs: every node run is journaled as an Edda activity.

Install with ``pip install 'edda-actors[graph]'``::

    g = GraphBuilder(state_type=OrderState, output_type=str)
    g.add(g.edge_from(g.start_node).to(Validate), g.node(Validate), g.node(Charge),
          g.node(WaitForEvent))
    order_graph = DurableGraph(g.build())

    @workflow
    async def order_workflow(ctx: WorkflowContext, order_id: str) -> str:
        return await order_graph.run(ctx, Validate(order_id), state=OrderState())

A node returns `Sleep` or `WaitForEvent` to wait durably; the node they name
runs afterwards. See docs/graph.md.
"""

from edda._extras import require as _require

_require("pydantic_graph", "edda.integrations.graph needs pydantic-graph", "graph")

from edda.integrations.graph.context import DurableGraphContext  # noqa: E402
from edda.integrations.graph.errors import GraphExecutionError  # noqa: E402
from edda.integrations.graph.markers import ReceivedEvent, Sleep, WaitForEvent  # noqa: E402
from edda.integrations.graph.runner import DurableGraph  # noqa: E402
from edda.runtime.names import publish as _publish  # noqa: E402

__all__ = [
    "DurableGraph",
    "DurableGraphContext",
    "GraphExecutionError",
    "ReceivedEvent",
    "Sleep",
    "WaitForEvent",
]

# Journals store these classes by module: they answer to this package, not to the
# module they live in today (see edda/__init__.py).
_publish(globals())
