"""Edda demo: an order workflow that survives being killed.

Run it with ``make demo`` (or ``python examples/order_demo.py`` once installed).

1. An order goes through four activities in this process.
2. A child process starts a second order and is killed with SIGKILL while it
   ships: the payment was taken, the parcel not yet sent.
3. This process starts a fresh Edda node on the same SQLite file. It finds the
   orphaned order, replays its journal (reserve and charge are not run again)
   and finishes it. A ledger of side effects shows that every activity that
   completed before the crash ran exactly once.
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

from pydantic import BaseModel

from edda import EddaApp, RetryPolicy, WorkflowContext, activity, workflow

WORKDIR = Path(os.environ.get("EDDA_DEMO_DIR") or tempfile.mkdtemp(prefix="edda-demo-"))
if "EDDA_DEMO_DIR" not in os.environ:  # a folder of its own: removed when the demo ends
    atexit.register(shutil.rmtree, WORKDIR, True)
DB_URL = f"sqlite:///{WORKDIR / 'orders.db'}"
LEDGER = WORKDIR / "ledger.db"


class Order(BaseModel):
    order_id: str
    item: str
    quantity: int
    amount: float


def record(order_id: str, what: str) -> None:
    """Every real side effect lands in the ledger, so we can count them."""
    with sqlite3.connect(LEDGER) as ledger:
        ledger.execute("CREATE TABLE IF NOT EXISTS effects(order_id, what, pid)")
        ledger.execute("INSERT INTO effects VALUES (?, ?, ?)", (order_id, what, os.getpid()))
    print(f"    [pid {os.getpid()}] {what} for {order_id}", flush=True)


@activity
async def reserve_inventory(ctx: WorkflowContext, order: Order) -> str:
    record(order.order_id, f"reserved {order.quantity} x {order.item}")
    return f"res-{order.order_id}"


_payment_attempts: dict[str, int] = {}


@activity(retry_policy=RetryPolicy(initial_interval=0.2, max_attempts=3))
async def charge_payment(ctx: WorkflowContext, order: Order) -> str:
    attempt = _payment_attempts.get(order.order_id, 0) + 1
    _payment_attempts[order.order_id] = attempt
    if attempt == 1:
        print(f"    [pid {os.getpid()}] payment gateway timed out for {order.order_id}; "
              "retrying", flush=True)
        raise ConnectionError("payment gateway timeout")
    record(order.order_id, f"charged {order.amount:.2f} EUR")
    return f"pay-{order.order_id}"


@activity
def ship_order(ctx: WorkflowContext, order: Order, *, carrier: str) -> str:
    if os.environ.get("EDDA_DEMO_HANG_IN_SHIP"):
        print(f"    [pid {os.getpid()}] handing {order.order_id} to {carrier}...", flush=True)
        signal.pause()  # the parent kills us here
    record(order.order_id, f"shipped with {carrier}")
    return f"{carrier}-{order.order_id}"


@activity
async def send_confirmation(ctx: WorkflowContext, order: Order, tracking: str) -> None:
    record(order.order_id, f"emailed tracking number {tracking}")


@workflow
async def order_workflow(ctx: WorkflowContext, order: Order) -> dict[str, str]:
    reservation = await reserve_inventory(ctx, order)
    payment = await charge_payment(ctx, order)
    tracking = await ship_order(ctx, order, carrier="postnord")
    await send_confirmation(ctx, order, tracking)
    return {"reservation": reservation, "payment": payment, "tracking": tracking}


async def run_child() -> None:
    """Child mode: start order B and hang while shipping it."""
    async with EddaApp("demo-shop", DB_URL):
        await order_workflow.start(order_id="B-2", item="kayak", quantity=1, amount=899.0)


async def run_order_a() -> None:
    print(f"Edda demo; database and ledger in {WORKDIR}\n")
    print("1) Order A runs start to finish in this process")
    async with EddaApp("demo-shop", DB_URL) as app:
        instance_id = await order_workflow.start(order_id="A-1", item="tent", quantity=2,
                                                 amount=249.5)
        inst = await app.get_instance(instance_id)
        assert inst is not None
        print(f"   -> {inst['status']}: {inst['output_data']['result']}\n")


def kill_order_b() -> None:
    print("2) Order B starts in a child process, which is killed while shipping")
    env = {**os.environ, "EDDA_DEMO_DIR": str(WORKDIR), "EDDA_DEMO_HANG_IN_SHIP": "1"}
    child = subprocess.Popen([sys.executable, __file__, "--child"], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        print(line, end="", flush=True)
        if "handing B-2" in line:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    print(f"   -> child {child.pid} killed with SIGKILL\n")


async def recover_order_b() -> None:
    print("3) A fresh node in this process recovers order B from its journal")
    async with EddaApp("demo-shop", DB_URL) as app:
        found = await app.find_instances(workflow_name="order_workflow",
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
        print(f"   {order_id}  {what:<34} pid {pid}")
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
        asyncio.run(recover_order_b())
        show_ledger()
