"""A child process for the graph crash test: a four-node pydantic-graph graph.

Usage: ``graph_child.py start|recover DB_URL``. Every node records that it ran
in the SQLite file named by ``EDDA_SIDE_DB`` and appends its name to the graph
state's trail. With ``EDDA_BLOCK_AT=N`` node N hangs after recording, so the
parent can SIGKILL the process there. ``recover`` starts a node, waits for the
workflow to complete and prints its result as JSON.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, field

import recovering_child  # run as a script: this folder is first on sys.path
from pydantic_graph import BaseNode, End, GraphBuilder, GraphRunContext

from edda import WorkflowContext, workflow
from edda.integrations.graph import DurableGraph

SIDE_DB = os.environ["EDDA_SIDE_DB"]
BLOCK_AT = int(os.environ.get("EDDA_BLOCK_AT", "0"))


@dataclass
class Parcel:
    trail: list[str] = field(default_factory=list)


async def _ran(ctx: GraphRunContext[Parcel, None], n: int, name: str) -> None:
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(node, pid) VALUES (?, ?)", (n, os.getpid()))
    ctx.state.trail.append(name)
    if n == BLOCK_AT:
        print(f"blocking in node {n}", flush=True)
        await asyncio.sleep(3600)


@dataclass
class Pack(BaseNode[Parcel, None, dict[str, object]]):
    order_id: str

    async def run(self, ctx: GraphRunContext[Parcel, None]) -> Label:
        await _ran(ctx, 1, "pack")
        return Label(self.order_id)


@dataclass
class Label(BaseNode[Parcel, None, dict[str, object]]):
    order_id: str

    async def run(self, ctx: GraphRunContext[Parcel, None]) -> HandOver:
        await _ran(ctx, 2, "label")
        return HandOver(f"LBL-{self.order_id}")


@dataclass
class HandOver(BaseNode[Parcel, None, dict[str, object]]):
    label: str

    async def run(self, ctx: GraphRunContext[Parcel, None]) -> Confirm:
        await _ran(ctx, 3, "hand_over")
        return Confirm(self.label)


@dataclass
class Confirm(BaseNode[Parcel, None, dict[str, object]]):
    label: str

    async def run(self, ctx: GraphRunContext[Parcel, None]) -> End[dict[str, object]]:
        await _ran(ctx, 4, "confirm")
        return End({"label": self.label, "trail": list(ctx.state.trail)})


g = GraphBuilder(state_type=Parcel, output_type=dict)
g.add(g.edge_from(g.start_node).to(Pack), g.node(Pack), g.node(Label), g.node(HandOver),
      g.node(Confirm))
shipping_graph = DurableGraph(g.build(), name="shipping")


@workflow
async def shipping(ctx: WorkflowContext, order_id: str) -> dict[str, object]:
    result: dict[str, object] = await shipping_graph.run(ctx, Pack(order_id), state=Parcel())
    return result


if __name__ == "__main__":
    recovering_child.main("graph-crash", shipping, order_id="S-1")
