"""Nodes in several processes on one PostgreSQL database, clustered over NATS.

This process runs one node; others run in child processes, each connected to the
NATS cluster the session started. Sweeps run every 60 s (unless a test says
otherwise), so only mail routed over NATS, membership news and liveness can
explain what the tests see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from edda import EddaApp, send_event
from edda.journal import schema
from edda.journal.partitions import DEFAULT_PARTITIONS
from edda.transports import NatsTransport
from tests.support.cluster import ids_in, owned, started_node
from tests.support.cluster_workflows import await_go, nap, read_inbox
from tests.support.gates import wait_until
from tests.support.natsserver import NatsCluster

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.nats]
MakeApp = Callable[..., EddaApp]
WORKFLOWS = [await_go, read_inbox, nap]


async def parent(make_app: MakeApp, db_url: str, nats: list[str], lease: float = 30.0,
                 **kwargs: Any) -> EddaApp:
    app = make_app(db_url, lease_seconds=lease, recovery_interval=60.0, workflows=WORKFLOWS,
                   nats_url=nats, **kwargs)
    await app.initialize()
    assert isinstance(app.transport, NatsTransport) and app.transport.connected
    return app


def inbox_heard(app: EddaApp) -> int:
    assert app._node is not None
    return app._node.listener.heard


async def test_mail_goes_to_the_owner_only(
    postgres_url: str, make_app: MakeApp, nats_cluster: NatsCluster
) -> None:
    """Events, send_to and cancels sent here for instances another node owns reach
    that node over NATS, one message each to its partition; this node hears none
    of them."""
    app = await parent(make_app, postgres_url, nats_cluster.urls[:1])
    with await started_node(app, postgres_url, nats=nats_cluster.urls[1:]) as child:
        keys = ids_in(await asyncio.to_thread(child.partitions), "go", 4)
        go, box, doomed = keys[:2], keys[2], keys[3]
        for key in go:
            await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
        await asyncio.to_thread(child.start_workflow, "read_inbox", box)
        await asyncio.to_thread(child.start_workflow, "await_go", doomed, key=doomed)
        heard_before = inbox_heard(app)
        for key in go:
            await send_event(f"go.{key}", "test", {"key": key})
        assert await app.send_to(box, {"n": 1}, channel="inbox") is True
        assert (await app.cancel_workflow(doomed, "test")).accepted
        for key in go:
            result = await app.wait_result(key, timeout=15)
            assert result == {"node": child.worker_id, "data": {"key": key}}
        assert await app.wait_result(box, timeout=15) == {
            "node": child.worker_id, "data": {"n": 1}}

        async def cancelled() -> bool:
            inst = await app.get_instance(doomed)
            return inst is not None and inst["status"] == "cancelled"

        await wait_until(cancelled, "the other node to cancel its instance", timeout=15)
        assert inbox_heard(app) == heard_before, "the sender is not the owner: it hears none"
        assert app._node is not None and app._node.router.sent >= 1


async def test_a_killed_node_on_another_host_is_taken_over_before_its_lease_ends(
    postgres_url: str, make_app: MakeApp, nats_cluster: NatsCluster,
    caplog: pytest.LogCaptureFixture
) -> None:
    """Its NATS connection is gone at once; its partitions move as soon as its
    database lease shows a missed renewal, long before the lease runs out."""
    lease = 15.0
    app = await parent(make_app, postgres_url, nats_cluster.urls, lease=lease)
    child = await started_node(app, postgres_url, lease=lease, hostname="edda-far-away",
                               nats=nats_cluster.urls)
    try:
        keys = ids_in(await asyncio.to_thread(child.partitions), "orphan", 3)
        for key in keys:
            await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
        nodes, db = schema.nodes, app.database
        expires = await db.query(lambda conn: conn.execute(sa.select(nodes.c.expires_at).where(
            nodes.c.node_id == child.worker_id)).scalar_one())
        with caplog.at_level(logging.WARNING, "edda.liveness"):
            await asyncio.to_thread(child.kill)

            async def taken() -> bool:
                return owned(app) == set(range(DEFAULT_PARTITIONS))

            await wait_until(taken, "this node to take the dead node's partitions", timeout=15)
        now = await db.query(lambda conn: conn.execute(sa.select(db.sql.now())).scalar_one())
        assert now < expires, "taken over while the dead node's lease still ran"
        assert f"node {child.worker_id} is gone from NATS" in caplog.text
        for key in keys:
            await send_event(f"go.{key}", "test", {})
            assert (await app.wait_result(key, timeout=15))["node"] == app.worker_id
    finally:
        child.kill()


async def test_a_node_cut_off_from_nats_keeps_working_and_is_noticed(
    postgres_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """The child's only NATS server dies: the others notice it is gone from NATS,
    but it renews its lease, so it keeps its partitions, and mail for them
    reaches it through the database at its sweeps. When the server is back, so
    is the node."""
    cluster = NatsCluster(advertise=False).start()
    try:
        first, _, last = cluster.servers
        app = await parent(make_app, postgres_url, [first.url], lease=3.0)
        child = await started_node(app, postgres_url, lease=3.0, nats=[last.url],
                                   recovery=1.0)
        with child, caplog.at_level(logging.WARNING):
            theirs = await asyncio.to_thread(child.partitions)
            (key,) = ids_in(theirs, "cut", 1)
            await asyncio.to_thread(child.start_workflow, "await_go", key, key=key)
            last.kill()
            assert app._node is not None and app._node.liveness is not None
            liveness = app._node.liveness
            await wait_until(lambda: child.worker_id in liveness.unreachable,
                             "this node to notice the child is gone from NATS", timeout=15)
            await wait_until(lambda: "is cut off from the transport but renews its lease"
                             in caplog.text, "the note that it still renews", timeout=15)
            await send_event(f"go.{key}", "test", {"key": key})
            assert await app.wait_result(key, timeout=20) == {
                "node": child.worker_id, "data": {"key": key}}
            assert await asyncio.to_thread(child.partitions) == theirs, "nothing moved"
            assert not owned(app) & theirs
            last.start()
            await wait_until(lambda: child.worker_id not in liveness.unreachable,
                             "the child to be back on NATS", timeout=20)
    finally:
        cluster.cleanup()


async def test_a_node_starts_while_nats_is_down(
    postgres_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """It says so, works through the database, and joins NATS once it can."""
    cluster = NatsCluster(size=1)
    try:
        with caplog.at_level(logging.WARNING, "edda.transports.nats"):
            app = make_app(postgres_url, nats_url=cluster.urls, workflows=WORKFLOWS)
            await app.initialize()
            assert "cannot reach NATS" in caplog.text
            key = await nap.start(seconds=0.05)
            assert await app.wait_result(key, timeout=15) == app.worker_id
            cluster.start()
            transport = app.transport
            assert isinstance(transport, NatsTransport)
            await wait_until(lambda: transport.connected, "the node to reach NATS", timeout=20)
    finally:
        cluster.cleanup()


async def test_nats_url_is_checked(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="either transport or nats_url"):
        EddaApp("t", postgres_url, nats_url="nats://127.0.0.1:4222",
                transport=NatsTransport("nats://127.0.0.1:4222"))
    with pytest.raises(ValueError, match="nats_url must be a server URL"):
        EddaApp("t", postgres_url, nats_url=[])
    # A URL the client could never connect to would be retried for ever: refused now.
    for bad, why in [("nats://", "names no host"), ("http://127.0.0.1:4222", "scheme 'http'"),
                     ("nats://127.0.0.1:99999", "out of range"),
                     (["ws://127.0.0.1:8080", "nats://127.0.0.1:4222"], "mixes websocket")]:
        with pytest.raises(ValueError, match=why):
            EddaApp("t", postgres_url, nats_url=bad)
    with pytest.raises(ValueError, match="liveness_interval must be positive"):
        EddaApp("t", postgres_url, nats_url="nats://127.0.0.1:4222", liveness_interval=0)

