"""A child process for the LlamaIndex crash test: a four-step LlamaIndex workflow.

Usage: ``llamaindex_child.py start|recover DB_URL``. Every step records that it
ran in the SQLite file named by ``EDDA_SIDE_DB`` and appends its name to the
workflow's ``ctx.store``. With ``EDDA_BLOCK_AT=N`` step N hangs after recording,
so the parent can SIGKILL the process there. ``recover`` starts a node, waits
for the workflow to complete and prints its result as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

from edda import EddaApp, WorkflowContext, workflow
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


async def main(mode: str, db_url: str) -> None:
    app = EddaApp("llamaindex-crash", db_url)
    await app.initialize()
    if mode == "start":
        await shipping.start(order_id="S-1")
        await asyncio.sleep(3600)  # killed in step BLOCK_AT
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        found = await app.find_instances(workflow_name="shipping", status="completed")
        if found["instances"]:
            print(json.dumps(found["instances"][0]["output_data"]["result"]), flush=True)
            await app.shutdown()
            return
        await asyncio.sleep(0.01)
    await app.shutdown()
    sys.exit("shipping did not complete within 60 s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
