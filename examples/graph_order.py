"""Edda + pydantic-graph demo: an order graph that waits for approval and survives SIGKILL.

Run it with ``.venv/bin/python examples/graph_order.py`` after ``make test``
(or ``pip install '/path/to/edda-actors[graph]'``). It needs no network.

1. Order A is small: its graph runs start to finish in this process, with a
   durable cooling-off sleep before it ships.
2. Order B is large: a child process checks and reserves it, then the graph
   waits durably for a manager's approval (`WaitForEvent`). The child is killed
   with SIGKILL while it waits.
3. A fresh Edda node in this process sends the approval CloudEvent. Order B
   resumes from its journal: check and reserve do not run again, the graph
   state comes back from the journal, and the order is charged and shipped. A
   ledger of side effects shows every node ran once.
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
from dataclasses import dataclass, field
from pathlib import Path

from pydantic_graph import BaseNode, End, GraphBuilder

from edda import EddaApp, WorkflowContext, send_event, workflow
from edda.integrations.graph import DurableGraph, DurableGraphContext, Sleep, WaitForEvent

WORKDIR = Path(os.environ.get("EDDA_DEMO_DIR") or tempfile.mkdtemp(prefix="edda-graph-"))
if "EDDA_DEMO_DIR" not in os.environ:  # a folder of its own: removed when the demo ends
    atexit.register(shutil.rmtree, WORKDIR, True)
DB_URL = f"sqlite:///{WORKDIR / 'orders.db'}"
LEDGER = WORKDIR / "ledger.db"
APPROVAL_LIMIT = 500.0
# A killed node's instances move to a live one when its lease runs out; a short
# lease keeps the demo quick.
LEASE_SECONDS = 2.0


def record(order_id: str, what: str) -> None:
    """Every real side effect lands in the ledger, so we can count them."""
    with sqlite3.connect(LEDGER) as ledger:
        ledger.execute("CREATE TABLE IF NOT EXISTS effects(order_id, what, pid)")
        ledger.execute("INSERT INTO effects VALUES (?, ?, ?)", (order_id, what, os.getpid()))
    print(f"    [pid {os.getpid()}] {what} for {order_id}", flush=True)


@dataclass
class Order:
    """The graph state: journaled after every node, restored into this object."""

    order_id: str
    amount: float
    reserved: list[str] = field(default_factory=list)
    approved_by: str | None = None


@dataclass
class Warehouse:
    """The graph's deps: live objects, never journaled."""

    stock: dict[str, int]


Ctx = DurableGraphContext[Order, Warehouse]


@dataclass
class CheckStock(BaseNode[Order, Warehouse, dict[str, str]]):
    sku: str

    async def run(self, ctx: Ctx) -> Reserve:
        if ctx.deps.stock.get(self.sku, 0) < 1:
            raise ValueError(f"{self.sku} is out of stock")
        record(ctx.state.order_id, f"checked stock of {self.sku}")
        return Reserve(self.sku)


@dataclass
class Reserve(BaseNode[Order, Warehouse, dict[str, str]]):
    sku: str

    async def run(self, ctx: Ctx) -> Charge | WaitForEvent | Decide:
        ctx.state.reserved.append(self.sku)
        record(ctx.state.order_id, f"reserved {self.sku}")
        if ctx.state.amount <= APPROVAL_LIMIT:
            ctx.state.approved_by = "auto"
            return Charge()
        print(f"    [pid {os.getpid()}] {ctx.state.order_id} waits for approval", flush=True)
        return WaitForEvent(f"approval.{ctx.state.order_id}", Decide(), timeout_seconds=3600)


@dataclass
class Decide(BaseNode[Order, Warehouse, dict[str, str]]):
    async def run(self, ctx: Ctx) -> Charge | End[dict[str, str]]:
        event = ctx.last_event  # the approval WaitForEvent received
        assert event is not None
        if not event.data.get("approved"):
            return End({"order_id": ctx.state.order_id, "status": "rejected"})
        ctx.state.approved_by = event.data["by"]
        return Charge()


@dataclass
class Charge(BaseNode[Order, Warehouse, dict[str, str]]):
    async def run(self, ctx: Ctx) -> Sleep | Ship:
        state = ctx.state
        record(state.order_id, f"charged {state.amount:.2f} EUR (approved by {state.approved_by})")
        # A cooling-off period before shipping: the workflow holds no worker meanwhile.
        return Sleep(1, Ship(payment_id=f"pay-{state.order_id}"))


@dataclass
class Ship(BaseNode[Order, Warehouse, dict[str, str]]):
    payment_id: str

    async def run(self, ctx: Ctx) -> End[dict[str, str]]:
        record(ctx.state.order_id, f"shipped {', '.join(ctx.state.reserved)}")
        return End({"order_id": ctx.state.order_id, "status": "shipped",
                    "payment": self.payment_id})


g = GraphBuilder(state_type=Order, deps_type=Warehouse, output_type=dict)
g.add(
    g.edge_from(g.start_node).to(CheckStock),
    g.node(CheckStock), g.node(Reserve), g.node(Decide), g.node(Charge), g.node(Ship),
    g.node(Sleep), g.node(WaitForEvent),
)
order_graph = DurableGraph(g.build(), name="order")
WAREHOUSE = Warehouse(stock={"kettle": 3, "espresso-machine": 1})


@workflow
async def graph_order(ctx: WorkflowContext, order_id: str, sku: str,
                      amount: float) -> dict[str, str]:
    state = Order(order_id=order_id, amount=amount)
    result: dict[str, str] = await order_graph.run(ctx, CheckStock(sku), state=state,
                                                   deps=WAREHOUSE)
    return result


async def run_child() -> None:
    """Child mode: start order B, then hang while it waits for approval."""
    app = EddaApp("graph-shop", DB_URL, lease_seconds=LEASE_SECONDS)
    await app.initialize()
    instance_id = await graph_order.start(order_id="B-2", sku="espresso-machine", amount=1299.0)
    inst = await app.get_instance(instance_id)
    assert inst is not None
    print(f"    [pid {os.getpid()}] instance is {inst['status']}", flush=True)
    signal.pause()  # the parent kills us here


async def run_order_a() -> None:
    print(f"Edda + pydantic-graph demo; database and ledger in {WORKDIR}\n")
    print("1) Order A (under the approval limit) runs start to finish in this process")
    async with EddaApp("graph-shop", DB_URL, lease_seconds=LEASE_SECONDS) as app:
        instance_id = await graph_order.start(order_id="A-1", sku="kettle", amount=89.0)
        result = await app.wait_result(instance_id, timeout=30)
        print(f"   -> completed: {result}\n")


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
    async with EddaApp("graph-shop", DB_URL, lease_seconds=LEASE_SECONDS) as app:
        await send_event("approval.B-2", "manager-portal", {"approved": True, "by": "maria"})
        found = await app.find_instances(workflow_name="graph_order",
                                         input_filters={"order_id": "B-2"})
        instance_id = found["instances"][0]["instance_id"]
        result = await app.wait_result(instance_id, timeout=30)
        print(f"   -> completed: {result}")
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
    print("\nEvery completed node ran exactly once." if not twice
          else f"\nNodes that ran twice: {sorted(twice)}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        asyncio.run(run_child())
    else:
        asyncio.run(run_order_a())
        kill_order_b()
        asyncio.run(approve_order_b())
        show_ledger()
