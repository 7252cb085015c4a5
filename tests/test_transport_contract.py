"""The transport contract: every Transport implementation must pass these unchanged.

They run against the in-process transport, against NATS with one real
nats-server, and against NATS with a cluster of three servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from edda.transports import (
    InProcTransport,
    NatsTransport,
    NoRespondersError,
    Transport,
    TransportClosedError,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["inproc", pytest.param("nats", marks=pytest.mark.nats),
                        pytest.param("nats-cluster", marks=pytest.mark.nats)])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    t: Transport
    if request.param == "inproc":
        t = InProcTransport()
    else:
        servers = (request.getfixturevalue("nats_server").url if request.param == "nats"
                   else request.getfixturevalue("nats_cluster").urls)
        nats = NatsTransport(servers)
        assert await nats.start(timeout=10), f"cannot connect to NATS at {servers}"
        t = nats
    yield t
    await t.aclose()


async def test_satisfies_protocol(transport: Transport) -> None:
    assert isinstance(transport, Transport)


async def test_publish_reaches_every_plain_subscriber(transport: Transport) -> None:
    async with transport.subscribe("a.b") as s1, transport.subscribe("a.b") as s2:
        await transport.publish("a.b", b"hi", headers={"k": "v"})
        for sub in (s1, s2):
            msg = await sub.next(timeout=2)
            assert (msg.subject, msg.data, dict(msg.headers)) == ("a.b", b"hi", {"k": "v"})


async def test_wildcards(transport: Transport) -> None:
    async with transport.subscribe("x.*.z") as star, transport.subscribe("x.>") as tail:
        await transport.publish("x.y.z", b"1")
        await transport.publish("x.y.q.r", b"2")
        assert (await star.next(timeout=2)).data == b"1"
        assert [(await tail.next(timeout=2)).data for _ in range(2)] == [b"1", b"2"]
        with pytest.raises(TimeoutError):
            await star.next(timeout=0.05)


async def test_non_matching_subject_is_not_delivered(transport: Transport) -> None:
    async with transport.subscribe("a.b") as sub:
        await transport.publish("a.c", b"no")
        await transport.publish("a.b.c", b"no")
        with pytest.raises(TimeoutError):
            await sub.next(timeout=0.05)


async def test_queue_group_delivers_each_message_once(transport: Transport) -> None:
    received: list[bytes] = []
    async with (
        transport.subscribe("jobs", queue="w") as w1,
        transport.subscribe("jobs", queue="w") as w2,
        transport.subscribe("jobs") as watcher,
    ):
        for i in range(20):
            await transport.publish("jobs", str(i).encode())
        for sub in (w1, w2):
            while True:
                try:
                    received.append((await sub.next(timeout=0.1)).data)
                except TimeoutError:
                    break
        watched = [(await watcher.next(timeout=2)).data for _ in range(20)]
    assert sorted(received, key=int) == [str(i).encode() for i in range(20)]
    assert len(watched) == 20


async def test_request_reply(transport: Transport) -> None:
    async with transport.subscribe("svc.echo") as sub, anyio.create_task_group() as tg:
        async def serve() -> None:
            msg = await sub.next(timeout=2)
            await msg.respond(msg.data.upper())

        tg.start_soon(serve)
        reply = await transport.request("svc.echo", b"ping", timeout=2)
    assert reply.data == b"PING"


async def test_request_without_responder_fails_at_once(transport: Transport) -> None:
    started = anyio.current_time()
    with pytest.raises(NoRespondersError):
        await transport.request("nobody.home", b"?", timeout=5)
    assert anyio.current_time() - started < 2


async def test_request_nobody_answers_times_out(transport: Transport) -> None:
    async with transport.subscribe("silent.one"):
        with pytest.raises(TimeoutError) as caught:
            await transport.request("silent.one", b"?", timeout=0.2)
    assert not isinstance(caught.value, NoRespondersError)


async def test_respond_to_plain_message_is_an_error(transport: Transport) -> None:
    async with transport.subscribe("p") as sub:
        await transport.publish("p", b"x")
        msg = await sub.next(timeout=2)
        with pytest.raises(ValueError, match="expects no reply"):
            await msg.respond(b"y")


@pytest.mark.parametrize("bad", ["", "a..b", "a b", "a.*", "a.>"])
async def test_bad_publish_subjects_are_rejected(transport: Transport, bad: str) -> None:
    with pytest.raises(ValueError):
        await transport.publish(bad, b"")


async def test_closed_transport_refuses_and_ends_iteration(transport: Transport) -> None:
    async with transport.subscribe("c") as sub:
        await transport.aclose()
        with pytest.raises(TransportClosedError):
            await transport.publish("c", b"")
        async for _ in sub:
            pytest.fail("a closed subscription yields nothing")
