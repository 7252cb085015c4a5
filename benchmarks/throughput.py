"""Throughput, latency and recovery of the journaled actor core.

Prints, as medians over ``--runs`` runs:

* concurrent: N workflows of K trivial activities started at once; durable
  steps per second and workflows per second, with group commit and, as the
  baseline in the same script, with one transaction per append
  (``group_commit_max_batch=1``);
* sequential: latency of one K-activity workflow at a time (median, p99);
* recovery: seconds from a fresh process's start to the completion of a
  ten-activity workflow whose previous process was SIGKILLed mid-run.

SQLite uses a file with ``synchronous=FULL``. ``--postgres`` also runs the
concurrent figure on a local PostgreSQL server with fsync on.

Usage: python benchmarks/throughput.py [--n 1000] [--k 5] [--runs 3] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stats import pct  # noqa: E402
from edda import EddaApp, WorkflowContext, activity, workflow  # noqa: E402
from tests.support.pgserver import LocalPostgres  # noqa: E402

CHILD = ROOT / "tests" / "support" / "crash_child.py"


@activity
async def trivial(ctx: WorkflowContext, i: int) -> int:
    return i + 1


@workflow
async def k_steps(ctx: WorkflowContext, k: int) -> int:
    total = 0
    for i in range(k):
        total += await trivial(ctx, i)
    return total


async def concurrent(url: str, n: int, k: int, max_batch: int) -> float:
    app = EddaApp("bench", url, group_commit_max_batch=max_batch)
    async with app:
        await k_steps.start(k=1)  # warm up: schema, pools, caches
        started = time.perf_counter()
        await asyncio.gather(*(k_steps.start(k=k) for _ in range(n)))
        return time.perf_counter() - started


async def sequential(url: str, runs: int, k: int) -> list[float]:
    app = EddaApp("bench", url)
    async with app:
        await k_steps.start(k=k)
        latencies = []
        for _ in range(runs):
            started = time.perf_counter()
            await k_steps.start(k=k)
            latencies.append(time.perf_counter() - started)
        return latencies


def recovery(tmp: Path) -> tuple[float, float]:
    """(seconds from the new process's main() to completion, whole process wall time)."""
    side = tmp / "side.db"
    with sqlite3.connect(side) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS runs(step INTEGER, pid INTEGER)")
        conn.execute("DELETE FROM runs")
    url = f"sqlite:///{tmp / 'recovery.db'}"
    env = {**os.environ, "EDDA_SIDE_DB": str(side), "EDDA_BLOCK_AT": "6"}
    child = subprocess.Popen([sys.executable, str(CHILD), "start", url], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(side) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE step = 6").fetchone():
                break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    env.pop("EDDA_BLOCK_AT")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(CHILD), "recover", url], env=env,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    (tmp / "recovery.db").unlink()
    return float(done.stdout.strip()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential-runs", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    n, k = args.n, args.k
    steps = n * k
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fresh = iter(range(10**6))

        def sqlite_url() -> str:
            return f"sqlite:///{tmp / f'bench{next(fresh)}.db'}"

        grouped = [asyncio.run(concurrent(sqlite_url(), n, k, 1000)) for _ in range(args.runs)]
        single = [asyncio.run(concurrent(sqlite_url(), n, k, 1)) for _ in range(args.runs)]
        g, s = statistics.median(grouped), statistics.median(single)
        print(f"SQLite (synchronous=FULL), N={n} workflows x K={k} activities, "
              f"median of {args.runs} runs")
        print(f"  group commit:         {steps / g:8.0f} steps/s  {n / g:7.0f} workflows/s")
        print(f"  one txn per append:   {steps / s:8.0f} steps/s  {n / s:7.0f} workflows/s"
              "  (baseline)")
        print(f"  ratio:                {s / g:8.1f}x")

        lat = [x * 1000 for _ in range(args.runs)
               for x in asyncio.run(sequential(sqlite_url(), args.sequential_runs, k))]
        print(f"sequential {k}-activity workflow, {args.sequential_runs} runs x {args.runs}: "
              f"median {statistics.median(lat):.2f} ms  p99 {pct(lat, 0.99):.2f} ms")

        rec = [recovery(tmp) for _ in range(args.runs)]
        print(f"restart to completion after SIGKILL: median "
              f"{statistics.median(r[0] for r in rec):.3f} s from initialize(), "
              f"{statistics.median(r[1] for r in rec):.3f} s for the whole new process "
              "(interpreter and imports included)")

        if args.postgres:
            server = LocalPostgres(durable=True).start()
            try:
                pg = [asyncio.run(concurrent(server.create_database(f"b{i}"), n, k, 1000))
                      for i in range(args.runs)]
            finally:
                server.stop()
            p = statistics.median(pg)
            print(f"PostgreSQL (fsync on), N={n} x K={k}: {steps / p:8.0f} steps/s  "
                  f"{n / p:7.0f} workflows/s")


if __name__ == "__main__":
    main()
