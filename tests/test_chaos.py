"""Chaos: three node processes on one database, one SIGKILLed at random and
restarted every few seconds while 2,000 workflows run (``EDDA_CHAOS_SECONDS``,
180 by default; set it higher for a longer run). The nodes wake each other
through the database's own bell (SQLite and PostgreSQL), or, on PostgreSQL,
form a cluster over a 3-server NATS cluster, one of whose servers is killed and
restarted on the way.

Afterwards, from the database and the side file the activities write: every
workflow completed exactly once, every message was received exactly once, and
only activities in flight in a killed process ran twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from edda.journal import schema
from edda.journal.codec import decode_json
from edda.journal.database import Database
from tests.support.chaos_workflows import BATCH
from tests.support.cluster import NodeProcess
from tests.support.natsserver import NatsCluster

pytestmark = pytest.mark.anyio
CHAOS_SECONDS = float(os.environ.get("EDDA_CHAOS_SECONDS", "120"))
TOTAL = 2000
LEASE = 5.0


def _chaos(db_url: str, env: dict[str, str], seed: int,
           nats: NatsCluster | None = None) -> list[tuple[int, float]]:
    """Spawn the workload in batches while killing a random node every 2 to 5 s
    (and, with ``nats``, one NATS server for a while); returns the (pid, time) of
    every node kill."""
    rng = random.Random(seed)
    urls = nats.urls if nats is not None else None
    nodes = [NodeProcess(db_url, LEASE, env=env, nats=urls).start() for _ in range(3)]
    kills: list[tuple[int, float]] = []
    nats_victim = rng.choice(nats.servers) if nats is not None else None
    nats_down = False
    try:
        began = time.monotonic()
        spawned = 0
        while time.monotonic() - began < CHAOS_SECONDS:
            elapsed = (time.monotonic() - began) / CHAOS_SECONDS
            if nats_victim is not None and not nats_down and elapsed > 0.3:
                nats_victim.kill()
                nats_down = True
            elif nats_victim is not None and nats_down and elapsed > 0.5:
                nats_victim.start()
                nats_victim = None
            pause = rng.uniform(2.0, 5.0)
            if spawned < TOTAL:
                share = min(TOTAL - spawned, max(BATCH, int(TOTAL * pause / CHAOS_SECONDS * 1.5)))
                share -= share % 2  # pairs go together
                rng.choice(nodes).ask(f"spawn {spawned} {spawned + share - 1}", timeout=120)
                spawned += share
            time.sleep(pause)
            victim = rng.randrange(3)
            kills.append((nodes[victim].pid, time.time()))
            nodes[victim].kill()
            nodes[victim] = NodeProcess(db_url, LEASE, env=env, nats=urls).start()
        if spawned < TOTAL:
            assert nodes[0].ask(f"spawn {spawned} {TOTAL - 1}", timeout=300) == "spawned"
        return kills
    finally:
        for node in nodes:  # killed too: what they ran may run again
            kills.append((node.pid, time.time()))
            node.kill()


async def _outcomes(db_url: str, timeout: float) -> dict[str, tuple[str, str | None]]:
    """Status and output of every chaos instance, once all have ended (or the
    timeout passed), as the database has them."""
    db = Database.open(db_url)
    i = schema.instances
    query = sa.select(i.c.instance_id, i.c.status, i.c.output).where(
        i.c.workflow_name == "chaos_wf")
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await db.query(lambda conn: list(conn.execute(query)))
            ended = [r for r in rows if r.status in ("completed", "failed", "cancelled")]
            if len(ended) == TOTAL or time.monotonic() > deadline:
                return {r.instance_id: (r.status, r.output) for r in rows}
            await asyncio.sleep(0.5)
    finally:
        await db.dispose()


async def _journal_of(db_url: str, instance_id: str) -> list[tuple[object, ...]]:
    """The journal of one instance (for a failure's message)."""
    db = Database.open(db_url)
    j = schema.journal
    try:
        return await db.query(lambda conn: [tuple(r) for r in conn.execute(
            sa.select(j.c.seq, j.c.kind, j.c.body, j.c.created_at)
            .where(j.c.instance_id == instance_id).order_by(j.c.seq))])
    finally:
        await db.dispose()


async def _leftover_messages(db_url: str) -> int:
    db = Database.open(db_url)
    m = schema.channel_messages
    try:
        return int(await db.query(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(m)).scalar() or 0))
    finally:
        await db.dispose()


@pytest.mark.timeout(CHAOS_SECONDS + 600)
async def test_nodes_killed_at_random_lose_nothing_and_do_nothing_twice(
    db_url: str, tmp_path: Path
) -> None:
    await _run_chaos(db_url, tmp_path, None)


@pytest.mark.timeout(CHAOS_SECONDS + 600)
@pytest.mark.postgres
@pytest.mark.nats
async def test_a_cluster_on_nats_loses_nothing_and_does_nothing_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    """The same, clustered over three NATS servers, one of them killed for a while."""
    cluster = NatsCluster().start()
    try:
        await _run_chaos(postgres_url, tmp_path, cluster)
    finally:
        cluster.cleanup()


async def _run_chaos(db_url: str, tmp_path: Path, nats: NatsCluster | None) -> None:
    side = tmp_path / "side.db"
    env = {"EDDA_SIDE_DB": str(side)}
    kills = await asyncio.to_thread(_chaos, db_url, env, 1234, nats)
    assert len(kills) >= CHAOS_SECONDS / 10
    # The last restarted nodes were killed too: a calm node finishes the rest.
    calm = await asyncio.to_thread(
        NodeProcess(db_url, LEASE, env=env, nats=nats.urls if nats else None).start)
    try:
        outcomes = await _outcomes(db_url, timeout=300)
    finally:
        await asyncio.to_thread(calm.stop)

    statuses = defaultdict(list)
    for instance_id, (status, _) in outcomes.items():
        statuses[status].append(instance_id)
    assert len(outcomes) == TOTAL and set(statuses) == {"completed"}, {
        s: ids[:5] for s, ids in statuses.items()}

    # Every job on the competing queue was taken exactly once.
    taken = [n for _, output in outcomes.values()
             for n in (decode_json(output) or {}).get("result", [])]
    assert sorted(taken) == list(range(TOTAL))
    # No message was published twice (it would be left over, unreceived).
    assert await _leftover_messages(db_url) == 0

    # Activities: once each, but for those in flight in a process that was killed.
    killed_at = dict(kills)
    with sqlite3.connect(side) as conn:
        runs = conn.execute("SELECT n, step, pid, started FROM runs ORDER BY started").fetchall()
    by_step: dict[tuple[int, str], list[tuple[int, float]]] = defaultdict(list)
    for n, step, pid, started in runs:
        by_step[(n, step)].append((pid, started))
    expected = {(n, s) for n in range(TOTAL) for s in ("start", "end")} | {
        (n, "ring") for n in range(1, TOTAL, 2)}
    missing = sorted(expected - set(by_step))
    assert not missing, (missing[:10], await _journal_of(db_url, f"chaos-{missing[0][0]}"))
    assert set(by_step) == expected
    for key, attempts in by_step.items():
        for pid, started in attempts[:-1]:  # every run but the last was cut short
            assert pid in killed_at and started <= killed_at[pid], (key, attempts)
