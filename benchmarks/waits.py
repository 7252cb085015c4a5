"""Durable waits: event delivery latency, timer lateness, 10,000 waiting workflows.

Prints, on a SQLite file with ``synchronous=FULL``, medians over ``--runs``:

* event delivery latency, ``send_event`` to workflow completion (hook), for a
  resident instance and, as the baseline in the same script, for a passivated
  one (claimed, replayed, then delivered);
* timer lateness (fire time minus due time) of many concurrent timers, resident
  and passivated (fired by the timer service);
* 10,000 workflows waiting at once: Python heap (tracemalloc) while resident
  and after passivation, and the time for one broadcast event to complete all.

Usage: python benchmarks/waits.py [--runs 3] [--pings 200] [--timers 300] [--waiters 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stats import median_of_runs  # noqa: E402
from edda import (  # noqa: E402
    EddaApp,
    HooksBase,
    WorkflowContext,
    send_event,
    sleep_until,
    wait_event,
    workflow,
)
from edda.testing import is_resident, passivate_idle  # noqa: E402


class Done(HooksBase):
    """Resolves a future per instance when it completes."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[float]] = {}

    def expect(self, instance_id: str) -> asyncio.Future[float]:
        return self.futures.setdefault(instance_id, asyncio.get_running_loop().create_future())

    async def on_workflow_complete(self, instance_id: str, workflow_name: str,
                                   result: Any) -> None:
        future = self.expect(instance_id)
        if not future.done():
            future.set_result(time.perf_counter())


@workflow
async def pinged(ctx: WorkflowContext) -> None:
    await wait_event(ctx, "bench.ping")


@workflow
async def timed(ctx: WorkflowContext, due: datetime) -> float:
    await sleep_until(ctx, due)
    return time.time() - due.timestamp()


@workflow
async def crowd(ctx: WorkflowContext) -> None:
    await wait_event(ctx, "bench.crowd")


async def delivery(url: str, pings: int, passivated: bool) -> list[float]:
    hooks = Done()
    app = EddaApp("bench", url, hooks=hooks, idle_seconds=0.0 if passivated else 600.0)
    latencies = []
    async with app:
        for _ in range(pings):
            iid = await pinged.start()
            done = hooks.expect(iid)
            if passivated:
                while is_resident(app, iid):
                    await asyncio.sleep(0.001)
            sent = time.perf_counter()
            await send_event("bench.ping", "bench", {}, extensions={"eddainstanceid": iid})
            latencies.append((await done) - sent)
    return latencies


async def lateness(url: str, timers: int, passivated: bool) -> list[float]:
    app = EddaApp("bench", url, idle_seconds=0.05 if passivated else 600.0)
    async with app:
        now = datetime.now(UTC)
        ids = await asyncio.gather(*(
            timed.start(due=now + timedelta(seconds=random.uniform(0.5, 2.0)))
            for _ in range(timers)))
        results: list[float] = []
        while len(results) < len(ids):
            results = []
            for iid in ids:
                inst = await app.get_instance(iid)
                if inst is not None and inst["status"] == "completed":
                    results.append(inst["output_data"]["result"])
            await asyncio.sleep(0.05)
    return results


async def crowd_run(url: str, waiters: int) -> dict[str, float]:
    hooks = Done()
    app = EddaApp("bench", url, hooks=hooks, idle_seconds=3600.0)  # all resident at first
    async with app:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        ids: list[str] = []
        for _ in range(0, waiters, 1000):
            ids += await asyncio.gather(*(crowd.start() for _ in range(min(1000, waiters))))
        start_s = time.perf_counter() - started
        resident = tracemalloc.get_traced_memory()[0] - base
        passivate_idle(app)  # now let every idle instance passivate
        while any(is_resident(app, i) for i in ids):
            await asyncio.sleep(0.1)
        passivated = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        futures = [hooks.expect(i) for i in ids]
        sent = time.perf_counter()
        await send_event("bench.crowd", "bench", {})
        await asyncio.gather(*futures)
        return {"start_s": start_s, "resident_mb": resident / 2**20,
                "passivated_mb": passivated / 2**20, "wake_all_s": time.perf_counter() - sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--timers", type=int, default=300)
    parser.add_argument("--waiters", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def url() -> str:
            return f"sqlite:///{Path(tmp) / f'w{next(counter)}.db'}"

        cases = [("event delivery", delivery, args.pings, "sends"),
                 ("timer lateness", lateness, args.timers, "timers")]
        for title, measure, count, unit in cases:
            for passivated in (False, True):
                runs = [asyncio.run(measure(url(), count, passivated)) for _ in range(args.runs)]
                label = "passivated" if passivated else "resident"
                if passivated and measure is delivery:
                    label += " (baseline)"
                print(f"{title}, {label:<22} median {median_of_runs(runs) * 1000:6.2f} ms  "
                      f"p99 {median_of_runs(runs, 0.99) * 1000:6.2f} ms "
                      f"({count} {unit} x {args.runs} runs)")
        crowd_stats = asyncio.run(crowd_run(url(), args.waiters))
        print(f"{args.waiters} waiting workflows: started in {crowd_stats['start_s']:.1f} s; "
              f"Python heap {crowd_stats['resident_mb']:.1f} MiB resident, "
              f"{crowd_stats['passivated_mb']:.1f} MiB after passivation; one broadcast event "
              f"completed all in {crowd_stats['wake_all_s']:.1f} s")


if __name__ == "__main__":
    main()
