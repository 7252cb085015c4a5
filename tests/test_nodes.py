"""Nodes as independent objects: results to await, registries and the current app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pydantic
import pytest

from edda import (
    EddaApp,
    TerminalError,
    WorkflowCancelledException,
    WorkflowContext,
    activity,
    send_event,
    wait_event,
    workflow,
)
from edda.transports import InProcTransport
from tests.support.gates import Gate, settle, wait_for, wait_until
from tests.test_workflows import GATES, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


class Receipt(pydantic.BaseModel):
    order_id: str
    total: float


class Declined(TerminalError):
    pass


@activity
async def charge(ctx: WorkflowContext, order_id: str, amount: float) -> Receipt:
    if amount < 0:
        raise Declined(f"cannot charge {amount}")
    return Receipt(order_id=order_id, total=amount)


@workflow
async def receipt_wf(ctx: WorkflowContext, order_id: str, amount: float) -> Receipt:
    return await charge(ctx, order_id, amount)


@workflow
async def approval_wf(ctx: WorkflowContext, order_id: str) -> str:
    event = await wait_event(ctx, f"approved.{order_id}")
    return f"{order_id} approved by {event.data['by']}"


@workflow
async def countdown_wf(ctx: WorkflowContext, n: int) -> str:
    if n > 0:
        await ctx.recur(n=n - 1)
    return f"lift-off from {ctx.instance_id}"


async def test_wait_result_returns_the_result_as_its_type(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    instance_id = await receipt_wf.start(order_id="A-1", amount=9.5)
    receipt = await app.wait_result(instance_id, timeout=10)
    assert receipt == Receipt(order_id="A-1", total=9.5)
    # The same from a node that did not run it: read back and restored to its type.
    other = make_app(db_url)
    await other.initialize()
    assert await other.wait_result(instance_id, timeout=10) == Receipt(order_id="A-1", total=9.5)


async def test_wait_result_raises_the_workflow_failure_as_its_type(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(Declined):
        await receipt_wf.start(order_id="A-2", amount=-1)
    (failed,) = (await app.find_instances(workflow_name="receipt_wf", status="failed"))[
        "instances"]
    with pytest.raises(Declined, match="cannot charge -1"):
        await app.wait_result(failed["instance_id"], timeout=10)


async def test_wait_result_wakes_when_a_waiting_instance_ends(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    instance_id = await approval_wf.start(order_id="B-1")
    waiting = asyncio.create_task(app.wait_result(instance_id, timeout=10))
    await asyncio.sleep(0)
    assert not waiting.done()
    await send_event("approved.B-1", "test", {"by": "ada"})
    assert await waiting == "B-1 approved by ada"


async def test_wait_result_of_a_cancelled_instance_raises(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    instance_id = await approval_wf.start(order_id="B-2")
    waiting = asyncio.create_task(app.wait_result(instance_id, timeout=10))
    assert await app.cancel_workflow(instance_id, "ops")
    with pytest.raises(WorkflowCancelledException, match="cancelled by 'ops'"):
        await waiting


async def test_wait_result_follows_recur_to_the_newest_instance(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    final = await countdown_wf.start(n=3)
    recurred = (await app.find_instances(workflow_name="countdown_wf", status="recurred",
                                         limit=10))["instances"]
    assert len(recurred) == 3
    oldest = recurred[-1]
    assert await app.wait_result(oldest["instance_id"], timeout=10) == f"lift-off from {final}"


async def test_wait_result_times_out_and_names_unknown_instances(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    instance_id = await approval_wf.start(order_id="B-3")
    with pytest.raises(TimeoutError):
        await app.wait_result(instance_id, timeout=0.05)
    with pytest.raises(LookupError, match="no workflow instance 'nope'"):
        await app.wait_result("nope")


@workflow
async def parent_wf(ctx: WorkflowContext) -> str:
    return await spawn_child(ctx)


@activity
async def spawn_child(ctx: WorkflowContext) -> str:
    return await child_wf.start()


@workflow
async def child_wf(ctx: WorkflowContext) -> str:
    return ctx.worker_id


@workflow
async def only_on_b(ctx: WorkflowContext) -> str:
    return "b"


async def test_two_nodes_in_one_process_each_run_their_own(
    sqlite_url: str, make_app: MakeApp
) -> None:
    shared = InProcTransport()  # they hear each other join and leave: B gets its share
    node_a = make_app(sqlite_url, workflows=[parent_wf, child_wf, receipt_wf], transport=shared)
    node_b = make_app(sqlite_url, transport=shared)
    await node_a.initialize()
    await node_b.initialize()  # the newest node: the default outside any node's tasks
    assert "only_on_b" not in node_a.registry.workflows()
    assert "only_on_b" in node_b.registry.workflows()
    # Started on A, the parent starts its child from A's task: the child runs on A too.
    parent = await node_a.start_workflow(parent_wf)
    child = await node_a.wait_result(parent, timeout=10)
    assert await node_a.wait_result(child, timeout=10) == node_a.worker_id
    on_b = await receipt_wf.start(order_id="C-1", amount=1.0)
    inst = await node_b.get_instance(on_b)
    assert inst is not None and inst["locked_by"] == node_b.worker_id
    await node_b.shutdown()
    on_a = await receipt_wf.start(order_id="C-2", amount=2.0)  # A is the one running now
    assert (await node_a.get_instance(on_a))["locked_by"] == node_a.worker_id  # type: ignore[index]
    with pytest.raises(LookupError, match="'only_on_b' is not registered on this node"):
        await node_a.start_workflow(only_on_b)
    await node_a.shutdown()
    await shared.aclose()


async def test_wait_result_callers_hear_when_the_node_shuts_down(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    GATES["held"] = Gate()
    try:
        started = asyncio.create_task(held_wf.start())
        await wait_for(GATES["held"].reached)
        (inst,) = (await app.find_instances(workflow_name="held_wf"))["instances"]
        waiting = asyncio.create_task(app.wait_result(inst["instance_id"]))
        await asyncio.sleep(0)
        await app.shutdown()
        error = await settle(waiting)
        assert isinstance(error, RuntimeError) and "shut down" in str(error)
        await settle(started)
    finally:
        del GATES["held"]


@workflow
async def held_wf(ctx: WorkflowContext) -> str:
    return await gate(ctx, "held")


@workflow
async def handed_over(ctx: WorkflowContext, key: str) -> str:
    await gate(ctx, key)
    return ctx.worker_id


@workflow
async def parked(ctx: WorkflowContext, key: str) -> str:
    await wait_event(ctx, f"unpark.{key}")
    return ctx.worker_id


async def test_stopping_one_node_hands_its_instances_to_the_other_at_once(
    sqlite_url: str, make_app: MakeApp
) -> None:
    shared = InProcTransport()  # the two nodes hear each other (NATS does this across hosts)
    # Leases and sweeps far longer than the test: only the handover can explain it.
    node_a = make_app(sqlite_url, transport=shared, lease_seconds=60.0)
    node_b = make_app(sqlite_url, transport=shared, lease_seconds=60.0)
    await node_a.initialize()
    await node_b.initialize()
    keys = [f"handover-{i}" for i in range(3)]
    for key in keys:
        GATES[key] = Gate()
    try:
        running = [asyncio.create_task(node_a.start_workflow(handed_over, key=k)) for k in keys]
        for key in keys:
            await wait_for(GATES[key].reached)
        waiting = [await node_a.start_workflow(parked, key=k) for k in keys]
        on_b = await node_b.start_workflow(parked, key="own")
        await node_a.shutdown()
        for task in running:
            assert isinstance(await settle(task), RuntimeError)  # A stopped: it says so

        async def held_again() -> bool:  # B runs them again from their journals
            return all(GATES[k].holds == 2 for k in keys)

        await wait_until(held_again, "node B to take over A's running instances")
        for key in keys:
            GATES[key].open()
        ids = [found["instance_id"] for key in keys for found in
               (await node_b.find_instances(input_filters={"key": key},
                                            workflow_name="handed_over"))["instances"]]
        for instance_id in ids:
            assert await node_b.wait_result(instance_id, timeout=10) == node_b.worker_id
        for key in [*keys, "own"]:
            await send_event(f"unpark.{key}", "test", {})
        for instance_id in [*waiting, on_b]:
            assert await node_b.wait_result(instance_id, timeout=10) == node_b.worker_id
    finally:
        for key in keys:
            GATES.pop(key, None)
    await shared.aclose()
