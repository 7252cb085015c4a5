"""An observer app (``observer=True``, what `edda viewer` runs) owns no partition and
runs nothing, yet starts, cancels, retries and queries through the nodes that do."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from edda import EddaApp, WorkflowContext, activity, wait_event, workflow
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]

RAN_IN: list[int] = []


@activity
async def where(ctx: WorkflowContext) -> str:
    RAN_IN.append(os.getpid())
    return ctx.instance_id


@workflow
async def observed(ctx: WorkflowContext) -> str:
    return await where(ctx)


@workflow
async def observed_waits(ctx: WorkflowContext) -> object:
    return (await wait_event(ctx, "observed.go")).data


async def test_an_observer_owns_nothing_and_the_node_runs_what_it_starts(
    db_url: str, make_app: MakeApp
) -> None:
    node = make_app(db_url, workflows=[observed, observed_waits])
    await node.initialize()
    observer = make_app(db_url, observer=True, workflows=[observed, observed_waits])
    await observer.initialize()
    assert node._node is not None and observer._node is not None
    assert observer._node.placement.owned == {}
    rows = await observer.stores.leases.nodes()
    assert [r.node_id for r in rows] == [node.worker_id]  # it registered no lease

    iid = await observer.start_workflow(observed)
    assert await observer.wait_result(iid, timeout=10) == iid
    assert observer._runner.resident == {} and observer.supervisor.restarts == 0
    row = await observer.get_instance(iid)
    assert row is not None and row["locked_by"] in (node.worker_id, None)

    waiting = await observer.start_workflow(observed_waits)

    async def is_waiting() -> bool:
        found = await observer.get_instance(waiting)
        return found is not None and found["status"] == "waiting_for_message"

    await wait_until(is_waiting, "the node to run the instance the observer started")
    assert await observer.cancel_workflow(waiting)

    async def cancelled() -> bool:
        found = await observer.get_instance(waiting)
        return found is not None and found["status"] == "cancelled"

    await wait_until(cancelled, "the owner to take the observer's cancel")
