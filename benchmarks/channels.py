"""Channels: competing job-queue throughput and direct-message round trips.

Prints, on a SQLite file with ``synchronous=FULL``, medians over ``--runs``:

* jobs per second processed by 10 competing worker workflows (each job one
  receive and one activity), with 1 worker as the baseline in the same script;
* round-trip latency of a direct ping-pong between two workflows
  (``send_to`` then ``receive``), median and p99.

Usage: python benchmarks/channels.py [--runs 3] [--jobs 5000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from benchmarks.stats import median_of_runs  # noqa: E402
from edda import (  # noqa: E402
    EddaApp,
    WorkflowContext,
    activity,
    receive,
    send_to,
    subscribe,
    workflow,
)
from edda.journal.channels import StoreMessage, new_message_id  # noqa: E402
from edda.journal.writes import apply_all  # noqa: E402


@activity
async def process(ctx: WorkflowContext, n: int) -> int:
    return n


@workflow
async def bench_worker(ctx: WorkflowContext, done: int = 0) -> int:
    await subscribe(ctx, "bench.jobs", mode="competing")
    while True:
        message = await receive(ctx, "bench.jobs")
        if message.data.get("stop"):
            return done
        await process(ctx, message.data["n"])
        done += 1
        if done % 200 == 0:  # keep journals short, as a real worker would
            await ctx.recur(done=done)


@workflow
async def ping(ctx: WorkflowContext, peer: str, rounds: int) -> list[float]:
    await subscribe(ctx, "box", mode="direct")
    trips = []
    for i in range(rounds):
        sent = time.perf_counter()
        await send_to(ctx, peer, {"i": i, "reply_to": ctx.instance_id}, channel="box")
        await receive(ctx, "box")
        trips.append(time.perf_counter() - sent)
    return trips


@workflow
async def pong(ctx: WorkflowContext, rounds: int) -> None:
    await subscribe(ctx, "box", mode="direct")
    for _ in range(rounds):
        message = await receive(ctx, "box")
        await send_to(ctx, message.data["reply_to"], {"i": message.data["i"]}, channel="box")


async def throughput(url: str, jobs: int, workers: int) -> float:
    app = EddaApp("bench", url, idle_seconds=600)
    async with app:
        payloads = [*({"n": n} for n in range(jobs)), *({"stop": True} for _ in range(workers))]
        await apply_all(app.database, [StoreMessage(new_message_id(), "bench.jobs", data, None,
                                                    {}, None) for data in payloads])
        started = time.perf_counter()
        await asyncio.gather(*(bench_worker.start() for _ in range(workers)))
        while True:
            found = await app.find_instances(workflow_name="bench_worker", status="completed",
                                             limit=1000)
            done = sum(i["output_data"]["result"] for i in found["instances"])
            if len(found["instances"]) == workers:
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        assert done == jobs, f"{done} of {jobs} jobs done"
        return jobs / elapsed


async def ping_pong(url: str, rounds: int) -> list[float]:
    app = EddaApp("bench", url, idle_seconds=600)
    async with app:
        peer = await pong.start(rounds=rounds)
        pinger = await ping.start(peer=peer, rounds=rounds)
        while True:
            inst = await app.get_instance(pinger)
            assert inst is not None
            if inst["status"] == "completed":
                return list(inst["output_data"]["result"])
            await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def url() -> str:
            return f"sqlite:///{Path(tmp) / f'c{next(counter)}.db'}"

        rates = {w: statistics.median(asyncio.run(throughput(url(), args.jobs, w))
                                      for _ in range(args.runs)) for w in (1, 10)}
        print(f"competing queue, {args.jobs} jobs (receive + one activity each), median of "
              f"{args.runs} runs: 10 workers {rates[10]:7.0f} jobs/s; 1 worker (baseline) "
              f"{rates[1]:7.0f} jobs/s; ratio {rates[10] / rates[1]:.1f}x")
        trips = [asyncio.run(ping_pong(url(), args.rounds)) for _ in range(args.runs)]
        print(f"direct ping-pong round trip, {args.rounds} rounds x {args.runs} runs: median "
              f"{median_of_runs(trips) * 1000:.2f} ms  p99 {median_of_runs(trips, 0.99) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
