"""NatsTransport against real nats-servers: across the servers of a cluster, through
a server restart, a server that is down at start, and a slow subscriber."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from edda.transports import NatsTransport, NoRespondersError, Subscription
from tests.support.natsserver import NatsCluster, NatsServer

pytestmark = [pytest.mark.anyio, pytest.mark.nats]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (the transport offers no event for these)
            await anyio.sleep(0.01)


async def heard(publisher: NatsTransport, sub: Subscription, subject: str, data: bytes,
                timeout: float = 10.0) -> None:
    """Publish ``data`` until ``sub`` receives it (interest may still be on its way
    to the publisher's server, or the subscriber be reconnecting)."""
    with anyio.fail_after(timeout):
        while True:
            await publisher.publish(subject, data)
            try:
                assert (await sub.next(timeout=0.2)).data == data
                return
            except TimeoutError:
                continue


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., NatsTransport]]:
    made: list[NatsTransport] = []

    def build(servers: str | list[str], **kwargs: object) -> NatsTransport:
        t = NatsTransport(servers, **kwargs)  # type: ignore[arg-type]
        made.append(t)
        return t

    yield build
    for t in made:
        await t.aclose()


@pytest.fixture
def own_server() -> AsyncIterator[NatsServer]:
    server = NatsServer("own")
    yield server  # type: ignore[misc]
    server.cleanup()


async def test_messages_cross_the_servers_of_a_cluster(
        nats_cluster: NatsCluster, connect: Callable[..., NatsTransport]) -> None:
    a, b, c = (connect(url) for url in nats_cluster.urls)
    for t in (a, b, c):
        assert await t.start(timeout=10)
    async with b.subscribe("x.y") as on_b, c.subscribe("x.y") as on_c:
        async with b.subscribe("jobs", queue="w") as w1, c.subscribe("jobs", queue="w") as w2:
            # interest travels over the routes: wait until a message from a gets through
            with anyio.fail_after(10):
                while True:
                    await a.publish("x.y", b"probe")
                    try:
                        await on_b.next(timeout=0.1)
                        await on_c.next(timeout=0.1)
                        break
                    except TimeoutError:
                        continue
            for i in range(40):
                await a.publish("jobs", str(i).encode())
            got: list[bytes] = []
            for sub in (w1, w2):
                while True:
                    try:
                        got.append((await sub.next(timeout=0.3)).data)
                    except TimeoutError:
                        break
            assert sorted(got, key=int) == [str(i).encode() for i in range(40)]

        async with anyio.create_task_group() as tg:
            async def serve() -> None:
                async with c.subscribe("svc.echo") as svc:
                    ready.set()
                    msg = await svc.next(timeout=10)
                    await msg.respond(b"from c:" + msg.data)

            ready = anyio.Event()
            tg.start_soon(serve)
            await ready.wait()
            with anyio.fail_after(10):
                while True:
                    try:
                        reply = await a.request("svc.echo", b"hi", timeout=2)
                        break
                    except NoRespondersError:  # not routed to a's server yet
                        await anyio.sleep(0.02)
        assert reply.data == b"from c:hi"
    # once the responder's connection is gone, the cluster says so at once
    await c.aclose()
    with anyio.fail_after(10):
        while True:
            try:
                await a.request("svc.echo", b"?", timeout=2)
            except NoRespondersError:
                break
            except TimeoutError:
                continue


async def test_server_restart_reconnects_resubscribes_and_reports_a_gap(
        own_server: NatsServer, connect: Callable[..., NatsTransport],
        caplog: pytest.LogCaptureFixture) -> None:
    own_server.start()
    t = connect(own_server.url)
    gaps: list[str] = []
    t.on_gap(gaps.append)
    assert await t.start(timeout=10)
    async with t.subscribe("after.restart") as sub:
        own_server.kill()
        await until(lambda: not t.connected)
        own_server.start()
        await until(lambda: t.connected)
        await until(lambda: "reconnected to NATS" in gaps)
        await heard(t, sub, "after.restart", b"again")  # resubscribed after reconnecting
    assert "lost the connection to NATS" in caplog.text


async def test_a_node_starts_while_nats_is_down_and_joins_later(
        own_server: NatsServer, connect: Callable[..., NatsTransport],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "edda.transports.nats")
    t = connect(own_server.url, connect_timeout=0.5)
    gaps: list[str] = []
    t.on_gap(gaps.append)
    assert not await t.start(timeout=0.3)
    await t.publish("early.bird", b"dropped, not raised")
    async with t.subscribe("early.bird") as sub:
        assert "cannot reach NATS" in caplog.text
        own_server.start()
        await until(lambda: t.connected, timeout=20)
        assert "connected to NATS late" in gaps
        await heard(t, sub, "early.bird", b"now")


async def test_a_slow_subscriber_drops_and_reports_a_gap(
        nats_server: NatsServer, connect: Callable[..., NatsTransport]) -> None:
    t = connect(nats_server.url, buffer=10)
    gaps: list[str] = []
    t.on_gap(gaps.append)
    assert await t.start(timeout=10)
    async with t.subscribe("slow.sub") as sub:
        for i in range(50):
            await t.publish("slow.sub", str(i).encode())
        await until(lambda: len(gaps) >= 40)
        kept = [(await sub.next(timeout=2)).data for _ in range(10)]
        assert kept == [str(i).encode() for i in range(10)]
        with pytest.raises(TimeoutError):
            await sub.next(timeout=0.1)
    assert all("full" in g for g in gaps)


async def test_killing_a_cluster_server_moves_its_clients_to_another(
        connect: Callable[..., NatsTransport]) -> None:
    cluster = NatsCluster().start()
    try:
        t = connect(cluster.urls)
        other = connect(cluster.urls)
        assert await t.start(timeout=10) and await other.start(timeout=10)
        async with t.subscribe("survives") as sub:
            victim = next(s for s in cluster.servers
                          if t._nc is not None and t._nc.connected_url is not None
                          and t._nc.connected_url.port == s.port)
            victim.kill()
            await until(lambda: t.connected and t._nc is not None
                        and t._nc.connected_url is not None
                        and t._nc.connected_url.port != victim.port, timeout=20)
            await heard(other, sub, "survives", b"yes", timeout=20)
    finally:
        cluster.cleanup()
