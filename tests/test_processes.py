"""Nodes in several processes on one database (SQLite file or PostgreSQL).

This process runs one node; others run in child processes (`tests.support.cluster`).
Sweeps run every 60 s and leases last longer than each test needs, so only the
processes ringing each other (LISTEN/NOTIFY, or sockets beside the SQLite file),
membership news and partition handover can explain what the tests see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from edda import EddaApp, send_event
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of
from edda.testing import sweep_now
from tests.support.cluster import ids_in, owned, started_node
from tests.support.cluster_workflows import await_go, nap, read_inbox
from tests.support.gates import wait_until

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
WORKFLOWS = [await_go, read_inbox, nap]


async def parent(make_app: MakeApp, db_url: str, lease: float = 30.0) -> EddaApp:
    app = make_app(db_url, lease_seconds=lease, recovery_interval=60.0, workflows=WORKFLOWS)
    await app.initialize()
    return app


async def test_a_joining_node_takes_its_share_and_a_leaving_one_hands_it_back(
    db_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, db_url)
    assert owned(app) == set(range(DEFAULT_PARTITIONS)), "alone, it holds them all"
    child = await started_node(app, db_url)
    try:
        assert 8 <= len(await asyncio.to_thread(child.partitions)) <= 56, "an even-ish split"
        await asyncio.to_thread(child.stop)

        async def all_back() -> bool:
            return owned(app) == set(range(DEFAULT_PARTITIONS))

        await wait_until(all_back, "the partitions of the node that left", timeout=5)
    finally:
        child.kill()


async def test_an_event_wakes_a_workflow_waiting_in_another_process(
    db_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, db_url)
    with await started_node(app, db_url) as child:
        keys = ids_in(await asyncio.to_thread(child.partitions), "go", 3)
        for key in keys:
            await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
        for key in keys:
            await send_event(f"go.{key}", "test", {"key": key})
        for key in keys:
            result = await app.wait_result(key, timeout=15)
            assert result == {"node": child.worker_id, "data": {"key": key}}


async def test_send_to_and_cancel_reach_an_instance_in_another_process(
    db_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, db_url)
    with await started_node(app, db_url) as child:
        early, late, doomed = ids_in(await asyncio.to_thread(child.partitions), "box", 3)
        # Sent before the instance exists: kept in its mailbox until it subscribes.
        assert await app.send_to(early, {"n": 1}, channel="inbox") is False
        await asyncio.to_thread(child.start_workflow, "read_inbox", early)
        assert await app.wait_result(early, timeout=15) == {
            "node": child.worker_id, "data": {"n": 1}}
        await asyncio.to_thread(child.start_workflow, "read_inbox", late)
        assert await app.send_to(late, {"n": 2}, channel="inbox") is True
        assert await app.wait_result(late, timeout=15) == {
            "node": child.worker_id, "data": {"n": 2}}
        await asyncio.to_thread(child.start_workflow, "await_go", doomed, key=doomed)
        assert (await app.cancel_workflow(doomed, "test")).accepted

        async def cancelled() -> bool:
            inst = await app.get_instance(doomed)
            return inst is not None and inst["status"] == "cancelled"

        await wait_until(cancelled, "the other process to cancel its instance", timeout=15)


async def test_a_chosen_id_is_one_instance_wherever_it_is_started(
    db_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, db_url)
    with await started_node(app, db_url) as child:
        (key,) = ids_in(await asyncio.to_thread(child.partitions), "order", 1)
        # Started here, it runs on the node that owns its partition; start() returns
        # once it waits there.
        assert await await_go.start(instance_id=key, key=key) == key
        inst = await app.get_instance(key)
        assert inst is not None and inst["status"] == "waiting_for_message"  # Edda's name
        assert inst["locked_by"] in (child.worker_id, None)
        assert await await_go.start(instance_id=key, key="other") == key
        await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
        found = await app.find_instances(workflow_name="await_go")
        assert [i["instance_id"] for i in found["instances"]] == [key], "one instance"
        with pytest.raises(ValueError, match="already an instance of workflow 'await_go'"):
            await nap.start(instance_id=key, seconds=1.0)
        with pytest.raises(ValueError, match="without dots or whitespace"):
            await nap.start(instance_id="a.b", seconds=1.0)
        await send_event(f"go.{key}", "test", {})
        assert (await app.wait_result(key, timeout=15))["node"] == child.worker_id


async def test_instances_follow_their_partition_to_a_new_node(
    db_url: str, make_app: MakeApp
) -> None:
    """Waiting instances of the partitions a new node takes run on it; a caller
    waiting here for their results still gets them."""
    app = await parent(make_app, db_url)
    keys = [f"moving-{n}" for n in range(16)]
    for key in keys:
        await await_go.start(instance_id=key, key=key)
    results = [asyncio.create_task(app.wait_result(key, timeout=30)) for key in keys]
    with await started_node(app, db_url) as child:
        theirs = await asyncio.to_thread(child.partitions)
        moved = {k for k in keys if partition_of(k, DEFAULT_PARTITIONS) in theirs}
        assert moved, "the new node took some of the 16"
        for key in keys:
            await send_event(f"go.{key}", "test", {})
        for key, result in zip(keys, results, strict=True):
            expected = child.worker_id if key in moved else app.worker_id
            assert (await result)["node"] == expected, key


async def test_a_node_on_another_host_that_dies_is_taken_over_within_its_lease(
    db_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, db_url, lease=2.0)
    child = await started_node(app, db_url, lease=2.0, hostname="edda-elsewhere")
    try:
        keys = ids_in(await asyncio.to_thread(child.partitions), "orphan", 3)
        for key in keys:
            await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
        await asyncio.to_thread(child.kill)  # no pid to check: another host

        async def taken() -> bool:
            return owned(app) == set(range(DEFAULT_PARTITIONS))

        await wait_until(taken, "this node to take the dead node's partitions", timeout=10)
        for key in keys:
            await send_event(f"go.{key}", "test", {})
            assert (await app.wait_result(key, timeout=15))["node"] == app.worker_id
    finally:
        child.kill()


async def test_sleepers_of_a_dead_node_wake_on_the_survivor(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = await parent(make_app, sqlite_url)
    child = await started_node(app, sqlite_url)
    try:
        keys = ids_in(await asyncio.to_thread(child.partitions), "nap", 2)
        for key in keys:
            await asyncio.to_thread(child.start_workflow, "nap", key, seconds=0.5)
        await asyncio.to_thread(child.kill)  # same host: its pid is gone at once
        await sweep_now(app)
        for key in keys:
            assert await app.wait_result(key, timeout=15) == app.worker_id
    finally:
        child.kill()
