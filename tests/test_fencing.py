"""Ownership end to end: wake-ups, lost wake-ups, lost leases and fenced nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from edda import EddaApp, WorkflowContext, workflow
from edda.journal import schema
from edda.journal.database import Database
from edda.journal.entries import ActivityCompleted
from edda.journal.store import read_journal
from edda.testing import MockClock, sweep_now
from tests.support.gates import Gate, wait_for, wait_until
from tests.test_workflows import GATES, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


@workflow
async def owned_wf(ctx: WorkflowContext, key: str) -> str:
    return await gate(ctx, key)


@workflow
async def per_node_wf(ctx: WorkflowContext) -> str:
    # Each node holds at its own gate; the position is the same on every node.
    await gate(ctx, ctx.worker_id)
    return ctx.worker_id


async def _instance_of(app: EddaApp, name: str) -> str:
    async def found() -> bool:
        return bool((await app.find_instances(workflow_name=name))["instances"])

    await wait_until(found, f"an instance of {name}")
    return str((await app.find_instances(workflow_name=name))["instances"][0]["instance_id"])


async def _status(app: EddaApp, instance_id: str) -> str:
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return str(inst["status"])


@pytest.mark.parametrize("resume", ["wake", "sweep"])
async def test_idle_owned_instance_resumes_by_wake_or_sweep(
    sqlite_url: str, make_app: MakeApp, resume: str
) -> None:
    key = f"idle-{resume}"
    GATES[key] = Gate()
    app = make_app(sqlite_url)
    await app.initialize()
    task = asyncio.create_task(owned_wf.start(key=key))
    await wait_for(GATES[key].reached)
    instance_id = await _instance_of(app, "owned_wf")
    await app.supervisor.stop(instance_id)  # the actor is gone; the instance is still ours
    assert not app.supervisor.is_running(instance_id)
    del GATES[key]
    if resume == "wake":
        await app.wake(instance_id)
    else:
        await sweep_now(app)
    assert await asyncio.wait_for(task, 10) == instance_id
    assert await _status(app, instance_id) == "completed"


async def test_node_that_lost_its_lease_stops_and_reclaims(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url, lease_seconds=0.3)
    await app.initialize()
    GATES[app.worker_id] = g = Gate()
    task = asyncio.create_task(per_node_wf.start())
    await wait_for(g.reached)
    instance_id = await _instance_of(app, "per_node_wf")
    other = Database.open(sqlite_url)
    try:
        await other.write(lambda conn: conn.execute(
            sa.delete(schema.nodes).where(schema.nodes.c.node_id == app.worker_id)))
    finally:
        await other.dispose()

    async def held_again() -> bool:
        return g.holds == 2

    await wait_until(held_again, "the node to notice, stop its actor and run it again")
    g.open()
    assert await asyncio.wait_for(task, 10) == instance_id
    assert await _status(app, instance_id) == "completed"


async def test_paused_node_is_fenced_off_after_takeover(sqlite_url: str, make_app: MakeApp) -> None:
    # Node A's clock stands still: it never renews its lease nor sweeps, as a node
    # frozen by SIGSTOP or a long GC pause; its actor is stuck in an activity.
    frozen = MockClock()
    node_a = make_app(sqlite_url, lease_seconds=0.5, clock=frozen)
    await node_a.initialize()
    GATES[node_a.worker_id] = gate_a = Gate()
    task_a = asyncio.create_task(per_node_wf.start())
    await wait_for(gate_a.reached)
    instance_id = await _instance_of(node_a, "per_node_wf")

    async def lease_expired() -> bool:  # by the database's clock, which does move
        rows = await node_a.stores.leases.nodes()
        return any(row.node_id == node_a.worker_id and row.expired for row in rows)

    await wait_until(lease_expired, "node A's lease to expire")
    node_b = make_app(sqlite_url)
    await node_b.initialize()  # its first sweep takes the instance over

    async def done_by_b() -> bool:
        return await _status(node_b, instance_id) == "completed"

    await wait_until(done_by_b, "node B to finish the instance")
    gate_a.open()  # A wakes up and tries to record its activity: it is fenced off
    # start() on A follows the instance to B and returns once it ended there.
    assert await asyncio.wait_for(task_a, 10) == instance_id

    inst = await node_b.get_instance(instance_id)
    assert inst is not None
    assert (inst["output_data"], inst["locked_by"], inst["epoch"]) == (
        {"result": node_b.worker_id}, node_b.worker_id, 2)
    records = await read_journal(node_b.database, instance_id)
    gates = [r.entry for r in records if isinstance(r.entry, ActivityCompleted)]
    assert [(e.position, e.result) for e in gates] == [("gate:1", node_b.worker_id)], \
        "only the owner's activity result may be journaled"
