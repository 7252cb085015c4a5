"""A child process for the LlamaIndex crash test: a four-step LlamaIndex workflow.

Usage: ``llamaindex_child.py start|recover DB_URL``. Every step records that it
ran in the SQLite file named by ``EDDA_SIDE_DB`` and appends its name to the
workflow's ``ctx.store``. With ``EDDA_BLOCK_AT=N`` step N hangs after recording,
so the parent can SIGKILL the process there. ``recover`` starts a node, waits
for the workflow to complete and prints its result as JSON.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

import recovering_child  # run as a script: this folder is first on sys.path
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from edda import WorkflowContext, workflow
from edda.integrations.llamaindex import DurableWorkflowRunner

SIDE_DB = os.environ["EDDA_SIDE_DB"]
BLOCK_AT = int(os.environ.get("EDDA_BLOCK_AT", "0"))


class Packed(Event):
    order_id: str


class Labelled(Event):
    order_id: str
    label: str


class Collected(Event):
    order_id: str
    label: str


async def _ran(ctx: Context, n: int, name: str) -> None:
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(step, pid) VALUES (?, ?)", (n, os.getpid()))
    trail = await ctx.store.get("trail", default=[])
    await ctx.store.set("trail", [*trail, name])
    if n == BLOCK_AT:
        print(f"blocking in step {n}", flush=True)
        await asyncio.sleep(3600)


class ShippingWorkflow(Workflow):
    @step
    async def pack(self, ctx: Context, ev: StartEvent) -> Packed:
        await _ran(ctx, 1, "pack")
        return Packed(order_id=ev.order_id)

    @step
    async def label(self, ctx: Context, ev: Packed) -> Labelled:
        await _ran(ctx, 2, "label")
        return Labelled(order_id=ev.order_id, label=f"LBL-{ev.order_id}")

    @step
    async def hand_over(self, ctx: Context, ev: Labelled) -> Collected:
        await _ran(ctx, 3, "hand_over")
        return Collected(order_id=ev.order_id, label=ev.label)

    @step
    async def confirm(self, ctx: Context, ev: Collected) -> StopEvent:
        await _ran(ctx, 4, "confirm")
        return StopEvent(result={"label": ev.label, "trail": await ctx.store.get("trail")})


runner = DurableWorkflowRunner(ShippingWorkflow)


@workflow
async def shipping(ctx: WorkflowContext, order_id: str) -> dict[str, object]:
    result: dict[str, object] = await runner.run(ctx, order_id=order_id)
    return result


if __name__ == "__main__":
    recovering_child.main("llamaindex-crash", shipping, order_id="S-1")
