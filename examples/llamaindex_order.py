"""Edda + LlamaIndex demo: a LlamaIndex workflow that waits for approval and survives SIGKILL.

Run it with ``.venv/bin/python examples/llamaindex_order.py`` after ``make test``
(or ``pip install '/path/to/edda-actors[llamaindex]'``). It needs no LLM and no network.

1. Order A is small: its LlamaIndex steps run start to finish in this process.
2. Order B is large: a child process validates and reserves it, then the
   workflow waits durably for a manager's approval. The child is killed with
   SIGKILL while it waits.
3. A fresh Edda node in this process sends the approval CloudEvent. Order B
   resumes from its journal: validate and reserve do not run again; it is
   charged and shipped. A ledger of side effects shows every step ran once.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step

from edda import EddaApp, WorkflowContext, send_event, workflow
from edda.integrations.llamaindex import DurableWaitEvent, DurableWorkflowRunner, ResumeEvent

WORKDIR = Path(os.environ.get("EDDA_DEMO_DIR") or tempfile.mkdtemp(prefix="edda-llamaindex-"))
if "EDDA_DEMO_DIR" not in os.environ:  # a folder of its own: removed when the demo ends
    atexit.register(shutil.rmtree, WORKDIR, True)
DB_URL = f"sqlite:///{WORKDIR / 'orders.db'}"
LEDGER = WORKDIR / "ledger.db"
APPROVAL_LIMIT = 500.0
# A killed node's instances move to a live one when its lease runs out; a short
# lease keeps the demo quick (the default is 15 s).
LEASE_SECONDS = 2.0


def record(order_id: str, what: str) -> None:
    """Every real side effect lands in the ledger, so we can count them."""
    with sqlite3.connect(LEDGER) as ledger:
        ledger.execute("CREATE TABLE IF NOT EXISTS effects(order_id, what, pid)")
        ledger.execute("INSERT INTO effects VALUES (?, ?, ?)", (order_id, what, os.getpid()))
    print(f"    [pid {os.getpid()}] {what} for {order_id}", flush=True)


class Validated(Event):
    order_id: str
    amount: float


class Reserved(Event):
    order_id: str
    amount: float


class Approved(Event):
    order_id: str
    by: str


class Charged(Event):
    order_id: str
    payment_id: str


class OrderWorkflow(Workflow):
    """An ordinary LlamaIndex workflow; Edda makes each step durable."""

    @step
    async def validate(self, ctx: Context, ev: StartEvent) -> Validated:
        if ev.amount <= 0:
            raise ValueError(f"order {ev.order_id} has no amount")
        await ctx.store.set("order_id", ev.order_id)
        await ctx.store.set("amount", ev.amount)
        record(ev.order_id, f"validated {ev.amount:.2f} EUR")
        return Validated(order_id=ev.order_id, amount=ev.amount)

    @step
    async def reserve(self, ev: Validated) -> Reserved:
        record(ev.order_id, "reserved stock")
        return Reserved(order_id=ev.order_id, amount=ev.amount)

    @step
    async def request_approval(self, ev: Reserved) -> DurableWaitEvent | Approved:
        if ev.amount <= APPROVAL_LIMIT:
            return Approved(order_id=ev.order_id, by="auto")
        print(f"    [pid {os.getpid()}] {ev.order_id} waits for approval", flush=True)
        return DurableWaitEvent(event_type=f"approval.{ev.order_id}", timeout_seconds=3600)

    @step
    async def decide(self, ctx: Context, ev: ResumeEvent) -> Approved | StopEvent:
        order_id = await ctx.store.get("order_id")
        if not ev.data.get("approved"):
            return StopEvent(result={"order_id": order_id, "status": "rejected"})
        return Approved(order_id=order_id, by=ev.data["by"])

    @step
    async def charge(self, ctx: Context, ev: Approved) -> Charged:
        amount = await ctx.store.get("amount")
        record(ev.order_id, f"charged {amount:.2f} EUR (approved by {ev.by})")
        return Charged(order_id=ev.order_id, payment_id=f"pay-{ev.order_id}")

    @step
    async def ship(self, ev: Charged) -> StopEvent:
        record(ev.order_id, "shipped")
        return StopEvent(result={"order_id": ev.order_id, "status": "shipped",
                                 "payment": ev.payment_id})


runner = DurableWorkflowRunner(OrderWorkflow)


@workflow
async def llamaindex_order(ctx: WorkflowContext, order_id: str, amount: float) -> dict[str, str]:
    result: dict[str, str] = await runner.run(ctx, order_id=order_id, amount=amount)
    return result


async def run_child() -> None:
    """Child mode: start order B, then hang while it waits for approval."""
    app = EddaApp("llamaindex-shop", DB_URL, lease_seconds=LEASE_SECONDS)
    await app.initialize()
    instance_id = await llamaindex_order.start(order_id="B-2", amount=1299.0)
    inst = await app.get_instance(instance_id)
    assert inst is not None
    print(f"    [pid {os.getpid()}] instance is {inst['status']}", flush=True)
    signal.pause()  # the parent kills us here


async def run_order_a() -> None:
    print(f"Edda + LlamaIndex demo; database and ledger in {WORKDIR}\n")
    print("1) Order A (under the approval limit) runs start to finish in this process")
    async with EddaApp("llamaindex-shop", DB_URL, lease_seconds=LEASE_SECONDS) as app:
        instance_id = await llamaindex_order.start(order_id="A-1", amount=89.0)
        inst = await app.get_instance(instance_id)
        assert inst is not None
        print(f"   -> {inst['status']}: {inst['output_data']['result']}\n")


def kill_order_b() -> None:
    print("2) Order B starts in a child process, which is killed while it waits")
    env = {**os.environ, "EDDA_DEMO_DIR": str(WORKDIR)}
    with subprocess.Popen([sys.executable, __file__, "--child"], env=env,
                          stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(line, end="", flush=True)
            if "instance is" in line:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
    print(f"   -> child {child.pid} killed with SIGKILL\n")


async def approve_order_b() -> None:
    print("3) A fresh node in this process sends the approval; order B resumes")
    async with EddaApp("llamaindex-shop", DB_URL, lease_seconds=LEASE_SECONDS) as app:
        await send_event("approval.B-2", "manager-portal", {"approved": True, "by": "maria"})
        found = await app.find_instances(workflow_name="llamaindex_order",
                                         input_filters={"order_id": "B-2"})
        instance_id = found["instances"][0]["instance_id"]
        result = await app.wait_result(instance_id, timeout=30)
        inst = await app.get_instance(instance_id)
        assert inst is not None
        print(f"   -> {inst['status']}: {result}")
        print("   journal of order B:")
        for entry in await app.get_history(instance_id):
            print(f"     {entry['id']:>2} {entry['event_type']:<18} {entry['activity_id']}")


def show_ledger() -> None:
    print("\nLedger (side effects, with the process that caused them):")
    with sqlite3.connect(LEDGER) as ledger:
        rows = ledger.execute("SELECT order_id, what, pid FROM effects ORDER BY rowid").fetchall()
    for order_id, what, pid in rows:
        print(f"   {order_id}  {what:<40} pid {pid}")
    kinds = [(o, w.split()[0]) for o, w, _ in rows]
    twice = {k for k in kinds if kinds.count(k) > 1}
    print("\nEvery completed step ran exactly once." if not twice
          else f"\nSteps that ran twice: {sorted(twice)}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        asyncio.run(run_child())
    else:
        asyncio.run(run_order_a())
        kill_order_b()
        asyncio.run(approve_order_b())
        show_ledger()
