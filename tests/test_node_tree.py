"""The node as a supervision tree: start-up errors, service restarts, giving up, one clock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio.abc
import pytest

from edda import (
    DatabaseUnavailableError,
    EddaApp,
    NodeFailedError,
    ServiceStartError,
    WorkflowContext,
    activity,
    send_event,
    sleep,
    wait_event,
    workflow,
)
from edda.actors.node import NodeSupervisor
from edda.journal.stores import sql_stores
from edda.testing import MockClock, kill_service
from edda.transports import InProcTransport
from tests.support.gates import finished, wait_for, wait_until
from tests.support.pgserver import LocalPostgres

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
RUNS: Counter[tuple[int, str]] = Counter()
DAY = 86400.0


@activity
async def tree_step(ctx: WorkflowContext, n: int, step: str) -> str:
    RUNS[(n, step)] += 1
    return step


@workflow
async def tree_wf(ctx: WorkflowContext, n: int) -> list[str]:
    done = [await tree_step(ctx, n, "before")]
    await sleep(ctx, 0.2)  # a timer: resident, or (idle_seconds=0) passivated
    event = await wait_event(ctx, f"go.{n}")
    done.append(await tree_step(ctx, n, event.data["step"]))
    return done


async def test_initialize_names_a_transport_that_cannot_subscribe(
    sqlite_url: str, make_app: MakeApp
) -> None:
    broken = InProcTransport()
    await broken.aclose()  # subscribing to a closed transport fails
    app = make_app(sqlite_url, transport=broken)
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match="transport listener could not start"):
        await app.initialize()
    assert time.monotonic() - started < 5
    assert (await sql_stores(app.database, None).leases.nodes()) == [], \
        "the lease taken before the listener failed is given back"


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
async def test_initialize_names_a_database_that_cannot_be_opened(
    tmp_path: Path, make_app: MakeApp, where: str
) -> None:
    if where == "sqlite":
        (tmp_path / "edda.db").mkdir()  # a directory where the file should be
        url = f"sqlite:///{tmp_path / 'edda.db'}"
    else:
        url = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    app = make_app(url, start_timeout=5)
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match="the node's database could not start"):
        await app.initialize()
    assert time.monotonic() - started < 8


async def _load(app: EddaApp, count: int) -> list[str]:
    ids = [await tree_wf.start(n=n) for n in range(count)]

    async def all_waiting_for_events() -> bool:
        found = await app.find_instances(workflow_name="tree_wf", status="waiting_for_message",
                                         limit=1000)
        return len(found["instances"]) == count

    await wait_until(all_waiting_for_events, "every instance to wait for its event")
    return ids


@pytest.mark.parametrize("service", ["journal writer", "lease heartbeat", "timer service",
                                     "transport listener", "recovery sweep", "background work"])
async def test_a_killed_service_is_restarted_and_nothing_is_lost(
    sqlite_url: str, make_app: MakeApp, service: str
) -> None:
    RUNS.clear()
    # No sweep within the test: what happens must come from the restarted service.
    app = make_app(sqlite_url, lease_seconds=60.0, idle_seconds=0.0)
    await app.initialize()
    first = [await tree_wf.start(n=n) for n in range(10)]  # passivate during their sleep
    await kill_service(app, service)
    second = [await tree_wf.start(n=n) for n in range(10, 20)]
    for n in range(20):
        await send_event(f"go.{n}", "test", {"step": "after"})
    for instance_id in first + second:
        inst = await finished(app, instance_id, timeout=20, statuses=("completed",))
        assert inst["output_data"]["result"] == ["before", "after"]
    assert RUNS == Counter({(n, step): 1 for n in range(20) for step in ("before", "after")})


async def test_a_service_that_keeps_crashing_stops_the_node_and_gives_its_instances_back(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    RUNS.clear()
    node_a = make_app(sqlite_url, lease_seconds=60.0)
    await node_a.initialize()
    (waiting,) = await _load(node_a, 1)
    result = asyncio.create_task(node_a.wait_result(waiting))
    with caplog.at_level(logging.ERROR, logger="edda.node"):
        for _ in range(6):  # the limit is 5 restarts a minute
            await kill_service(node_a, "timer service")
    error = await asyncio.gather(result, return_exceptions=True)
    assert isinstance(error[0], NodeFailedError) and "timer service" in str(error[0])
    assert any("timer service crashed 6 times" in r.getMessage() for r in caplog.records)
    with pytest.raises(NodeFailedError, match="timer service crashed 6 times"):
        await node_a.start_workflow(tree_wf, n=99)
    row = await sql_stores(node_a.database, None).journal.row(waiting)
    assert row is not None and row["owner_node"] is None, "its instance was given back"
    node_b = make_app(sqlite_url, lease_seconds=60.0)
    await node_b.initialize()
    await send_event("go.0", "test", {"step": "elsewhere"})
    assert await node_b.wait_result(waiting, timeout=10) == ["before", "elsewhere"]


@workflow
async def long_nap(ctx: WorkflowContext) -> str:
    await sleep(ctx, 3 * DAY)
    return "rested"


@pytest.mark.parametrize("passivated", [False, True])
async def test_a_three_day_sleep_under_a_mock_clock(
    sqlite_url: str, make_app: MakeApp, passivated: bool
) -> None:
    clock = MockClock()
    app = make_app(sqlite_url, clock=clock, idle_seconds=60.0)
    await app.initialize()
    started = time.monotonic()
    instance_id = await long_nap.start()  # returns once it sleeps
    if passivated:
        clock.advance(61)  # idle for longer than idle_seconds: it leaves memory

        async def given_up() -> bool:
            row = await app.stores.journal.row(instance_id)
            return row is not None and row["owner_node"] is None

        await wait_until(given_up, "the sleeping instance to be passivated")
    clock.advance(DAY)
    with pytest.raises(TimeoutError):
        await app.wait_result(instance_id, timeout=0.2)
    clock.advance(2 * DAY)
    assert await app.wait_result(instance_id, timeout=10) == "rested"
    assert time.monotonic() - started < 10


async def test_leases_are_judged_by_the_database_clock_not_the_hosts(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Node A's clock runs an hour ahead and then stands still (a frozen host). Judged
    # by host clocks its lease would look valid for an hour; the database says 0.5 s.
    ahead = MockClock(time.time() + 3600)
    node_a = make_app(sqlite_url, lease_seconds=0.5, clock=ahead)
    await node_a.initialize()
    node_b = make_app(sqlite_url, lease_seconds=0.5)
    await node_b.initialize()

    async def a_is_gone() -> bool:
        return all(row.node_id != node_a.worker_id for row in await node_b.stores.leases.nodes())

    await wait_until(a_is_gone, "node B to find node A's lease expired", timeout=10)
    # A's clock moves again: its next renewal finds the row gone and it stops its actors.
    assert node_a._node is not None
    lease = node_a._node.placement
    ahead.advance(1.0)

    async def lost() -> bool:
        return lease.lost >= 1

    await wait_until(lost, "node A to notice it lost its lease")
    said = [r for r in caplog.records if r.name == "edda.placement"
            and f"node {node_a.worker_id} lost its lease" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.ERROR


class _CrashesOnce:
    """A node service that crashes right after its first start (to test the tree)."""

    name = "crashing service"

    def __init__(self) -> None:
        self.runs = 0
        self.crashed = asyncio.Event()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self.runs += 1
        task_status.started()
        if self.runs == 1:
            self.crashed.set()
            raise RuntimeError("a bug")
        await asyncio.Event().wait()

    async def drain(self) -> None:
        return None


async def test_stopping_a_node_while_a_service_waits_to_restart_does_not_restart_it() -> None:
    service = _CrashesOnce()

    async def failed(error: BaseException) -> None:
        raise AssertionError(f"the node failed: {error}")

    tree = NodeSupervisor([service], on_failure=failed, backoff_initial=30.0)
    await tree.start()
    await wait_for(service.crashed)  # it now waits 30 s before its restart
    await asyncio.wait_for(tree.stop(), 5)
    assert service.runs == 1 and not tree.running


@pytest.mark.postgres
async def test_a_node_that_fails_while_the_database_is_away_still_stops(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalPostgres().start()
    try:
        app = make_app(server.create_database("failing"), lease_seconds=60.0)
        await app.initialize()
        await asyncio.to_thread(server.stop_server)
        pending = asyncio.create_task(tree_wf.start(n=1))  # its creation waits for the database

        async def waiting() -> bool:
            return app._writer is not None and app._writer.waiting_for_database

        await wait_until(waiting, "the writer to wait for the database")
        with caplog.at_level(logging.ERROR, logger="edda.node"):
            for _ in range(6):
                await kill_service(app, "timer service", timeout=15)
        error = await asyncio.wait_for(asyncio.gather(pending, return_exceptions=True), 15)
        assert isinstance(error[0], DatabaseUnavailableError | NodeFailedError), error
        with pytest.raises(NodeFailedError, match="timer service"):
            await app.start_workflow(tree_wf, n=2)
    finally:
        server.stop()
