"""What running a LlamaIndex workflow durably costs.

Prints, on a SQLite file with ``synchronous=FULL``, medians over ``--runs``:

* concurrent: N five-step workflows started at once, in durable steps per
  second, for a LlamaIndex workflow under `DurableWorkflowRunner` (each step
  reads and writes ``ctx.store``) and, as the baseline in the same script, for
  an Edda workflow of five plain activities doing the same work;
* sequential: the latency of one five-step workflow at a time, for both;
* for scale, LlamaIndex's own in-memory ``Workflow.run()`` of the same
  workflow, which journals nothing.

Usage: python benchmarks/llamaindex.py [--n 500] [--seq 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llama_index.core.workflow import (  # noqa: E402
    Context,
    Event,
    StartEvent,
    StopEvent,
    Workflow,
    step,
)

from benchmarks.stats import pct  # noqa: E402
from edda import EddaApp, WorkflowContext, activity, workflow  # noqa: E402
from edda.integrations.llamaindex import DurableWorkflowRunner  # noqa: E402

K = 5


class Stage(Event):
    order_id: str
    n: int


async def _work(ctx: Context, ev: StartEvent | Stage, n: int) -> Stage:
    await ctx.store.set("last", n)
    return Stage(order_id=ev.order_id, n=n)


class FiveSteps(Workflow):
    @step
    async def s1(self, ctx: Context, ev: StartEvent) -> Stage:
        return await _work(ctx, ev, 1)

    @step
    async def s2(self, ctx: Context, ev: Stage) -> Stage | StopEvent:
        if ev.n == K - 1:
            return StopEvent(result={"order_id": ev.order_id, "last": await ctx.store.get("last")})
        return await _work(ctx, ev, ev.n + 1)


runner = DurableWorkflowRunner(FiveSteps)


@workflow
async def llamaindex_five(ctx: WorkflowContext, order_id: str) -> Any:
    return await runner.run(ctx, order_id=order_id)


@activity
async def stage(ctx: WorkflowContext, order_id: str, n: int) -> dict[str, Any]:
    return {"order_id": order_id, "n": n}


@workflow
async def plain_five(ctx: WorkflowContext, order_id: str) -> Any:
    last: dict[str, Any] = {}
    for n in range(1, K + 1):
        last = await stage(ctx, order_id, n)
    return last


async def concurrent(url: str, wf: Any, n: int) -> float:
    async with EddaApp("bench", url):
        await wf.start(order_id="warm-up")
        started = time.perf_counter()
        await asyncio.gather(*(wf.start(order_id=f"o-{i}") for i in range(n)))
        return n * K / (time.perf_counter() - started)


async def sequential(url: str, wf: Any, runs: int) -> list[float]:
    async with EddaApp("bench", url):
        await wf.start(order_id="warm-up")
        latencies = []
        for i in range(runs):
            started = time.perf_counter()
            await wf.start(order_id=f"s-{i}")
            latencies.append(time.perf_counter() - started)
        return latencies


async def in_memory(n: int) -> float:
    flow = FiveSteps(timeout=60)
    await flow.run(order_id="warm-up")
    started = time.perf_counter()
    await asyncio.gather(*(flow.run(order_id=f"m-{i}") for i in range(n)))
    return n * K / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seq", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"llamaindex": [], "plain": [], "memory": []}
    latencies: dict[str, list[list[float]]] = {"llamaindex": [], "plain": []}
    flows = {"llamaindex": llamaindex_five, "plain": plain_five}
    for run in range(args.runs):
        for name, wf in flows.items():
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                rates[name].append(asyncio.run(concurrent(url, wf, args.n)))
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                latencies[name].append(asyncio.run(sequential(url, wf, args.seq)))
        rates["memory"].append(asyncio.run(in_memory(args.n)))
        print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} steps/s" for k, v in
                                           rates.items()), flush=True)

    def ms(name: str, q: float | None) -> float:
        per_run = [statistics.median(r) if q is None else pct(r, q) for r in latencies[name]]
        return 1000 * statistics.median(per_run)

    li, plain = statistics.median(rates["llamaindex"]), statistics.median(rates["plain"])
    print(f"\n{args.n} five-step workflows at once, SQLite FULL, medians of {args.runs} runs:")
    print(f"  DurableWorkflowRunner (LlamaIndex steps): {li:,.0f} durable steps/s")
    print(f"  plain Edda activities (baseline):         {plain:,.0f} durable steps/s")
    print(f"  runner / plain:                           {li / plain:.2f}")
    print(f"  LlamaIndex Workflow.run(), in memory, not durable: "
          f"{statistics.median(rates['memory']):,.0f} steps/s")
    print(f"\none five-step workflow at a time ({args.seq} runs):")
    for name in ("llamaindex", "plain"):
        print(f"  {name:<10} median {ms(name, None):.1f} ms, p99 {ms(name, 0.99):.1f} ms")


if __name__ == "__main__":
    main()
