"""The HTTP edge and the outbox: CloudEvents ingress and relay throughput.

Prints, on a SQLite file with ``synchronous=FULL``, medians over ``--runs``:

* **ingress**: ``--events`` workflows each wait for their own CloudEvent
  (``eddainstanceid``); a load generator POSTs the events over loopback to the
  app under uvicorn with ``--concurrency`` requests in flight. Accepted events
  per second (every 202 is committed), and the time until every workflow
  resumed and completed. Baseline in the same script: the same events handed
  to ``app.handle_cloudevent`` directly, without HTTP.
* **relay**: ``--events`` outbox events committed by activities, then relayed
  by an `OutboxRelayer` (``batch_size`` 100) to a sink under uvicorn. Baseline:
  plain POSTs of the same events to the same sink with the relayer's HTTP
  client and in-flight limit, with no outbox (what HTTP alone costs).

The load generator, the server and the sink share this one process (and its
event loop), so these figures are conservative.

Usage: python benchmarks/edge.py [--runs 3] [--events 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edda import (  # noqa: E402
    EddaApp,
    HooksBase,
    OutboxRelayer,
    WorkflowContext,
    activity,
    send_event_transactional,
    wait_event,
    workflow,
)
from edda.journal.outbox import outbox_rows  # noqa: E402
from tests.support.web import Sink, serve  # noqa: E402


class Completed(HooksBase):
    def __init__(self, expected: int) -> None:
        self.left = expected
        self.all_done = asyncio.Event()

    async def on_workflow_complete(self, instance_id: str, workflow_name: str,
                                   result: Any) -> None:
        self.left -= 1
        if self.left == 0:
            self.all_done.set()


@workflow
async def awaits_event(ctx: WorkflowContext) -> Any:
    return (await wait_event(ctx, "bench.go")).data


@activity
async def emit(ctx: WorkflowContext, first: int, count: int) -> int:
    for n in range(first, first + count):
        await send_event_transactional(ctx, "bench.out", "/bench", {"n": n})
    return count


@workflow
async def emits(ctx: WorkflowContext, first: int, count: int) -> int:
    return await emit(ctx, first, count)


def _event(instance_id: str, n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e-{n}", "type": "bench.go", "source": "/bench",
            "eddainstanceid": instance_id, "data": {"n": n}}


class Connection:
    """A bare HTTP/1.1 keep-alive connection: the load generator, kept cheap so
    that it measures the server rather than the client library."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, _, port = base.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def post(self, body: dict[str, Any]) -> int:
        payload = json.dumps(body).encode()
        self.writer.write(
            f"POST / HTTP/1.1\r\nhost: {self.host}\r\n"
            f"content-type: application/cloudevents+json\r\n"
            f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def _post_all(base: str, bodies: list[dict[str, Any]], concurrency: int) -> None:
    connections = [await Connection.open(base) for _ in range(concurrency)]

    async def worker(conn: Connection, share: list[dict[str, Any]]) -> None:
        for body in share:
            status = await conn.post(body)
            assert status in (200, 202), status

    try:
        await asyncio.gather(*(worker(conn, bodies[i::concurrency])
                               for i, conn in enumerate(connections)))
    finally:
        for conn in connections:
            conn.close()


async def _pool(items: list[Any], concurrency: int, send: Any) -> None:
    async def worker(share: list[Any]) -> None:
        for item in share:
            await send(item)

    await asyncio.gather(*(worker(items[i::concurrency]) for i in range(concurrency)))


async def ingress(events: int, concurrency: int, over_http: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        done = Completed(events)
        app = EddaApp("bench", f"sqlite:///{tmp}/b.db", hooks=done, idle_seconds=3600)
        async with app:
            ids = [await awaits_event.start() for _ in range(events)]
            bodies = [_event(iid, n) for n, iid in enumerate(ids)]
            started = time.perf_counter()
            if over_http:
                async with serve(app) as base:
                    await _post_all(base, bodies, concurrency)
                    accepted = time.perf_counter() - started
                    await asyncio.wait_for(done.all_done.wait(), 300)
            else:
                await _pool(bodies, concurrency, app.handle_cloudevent)
                accepted = time.perf_counter() - started
                await asyncio.wait_for(done.all_done.wait(), 300)
            finished = time.perf_counter() - started
    return events / accepted, finished


async def relay(events: int, concurrency: int, through_outbox: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink()
        app = EddaApp("bench", f"sqlite:///{tmp}/b.db")
        async with app, serve(sink) as broker:
            if through_outbox:
                per = 100
                await asyncio.gather(*(emits.start(first=n, count=per)
                                       for n in range(0, events, per)))
                relayer = OutboxRelayer(app, broker, batch_size=100, poll_interval=0.05)
                started = time.perf_counter()
                await relayer.start()
                while len(sink.deliveries) < events:
                    await asyncio.sleep(0.005)
                elapsed = time.perf_counter() - started
                await relayer.stop()
                rows = await app.database.query(lambda c: outbox_rows(c, status="published"))
                assert len(rows) >= events - 100, "events were delivered but not settled"
            else:
                bodies = [{"specversion": "1.0", "id": f"p-{n}", "type": "bench.out",
                           "source": "/bench", "data": {"n": n}} for n in range(events)]
                # The relayer's own HTTP client and in-flight limit, without the outbox.
                relayer = OutboxRelayer(app, broker)
                client = relayer._new_client()
                slots = asyncio.Semaphore(relayer.max_in_flight)

                async def post(body: dict[str, Any]) -> None:
                    async with slots:
                        response = await client.post(broker, json=body, headers={
                            "content-type": "application/cloudevents+json"})
                        response.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(post(body) for body in bodies))
                elapsed = time.perf_counter() - started
                await client.aclose()
    return events / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    n, c = args.events, args.concurrency

    http_in, direct_in, http_all, direct_all = [], [], [], []
    for _ in range(args.runs):
        rate, total = await ingress(n, c, over_http=True)
        http_in.append(rate)
        http_all.append(total)
        rate, total = await ingress(n, c, over_http=False)
        direct_in.append(rate)
        direct_all.append(total)
    med = statistics.median
    print(f"CloudEvents ingress, {n} events resuming {n} waiting workflows, "
          f"{c} in flight, {args.runs} runs (medians):")
    print(f"  over HTTP (uvicorn):   {med(http_in):7.0f} accepted events/s, all "
          f"{n} workflows completed after {med(http_all):.2f} s")
    print(f"  handle_cloudevent():   {med(direct_in):7.0f} accepted events/s, all "
          f"{n} workflows completed after {med(direct_all):.2f} s  (baseline)")
    print(f"  ratio HTTP / direct:   {med(http_in) / med(direct_in):.2f}")

    relayed, plain = [], []
    for _ in range(args.runs):
        relayed.append(await relay(n, c, through_outbox=True))
        plain.append(await relay(n, c, through_outbox=False))
    print(f"Outbox relay of {n} committed events to a sink under uvicorn (medians):")
    print(f"  OutboxRelayer (batch 100):   {med(relayed):7.0f} events/s")
    print(f"  plain httpx POSTs, same limits: {med(plain):7.0f} events/s  (baseline)")
    print(f"  ratio relayer / plain:       {med(relayed) / med(plain):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
