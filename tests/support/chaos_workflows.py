"""The chaos test's workload: pairs of instances that sleep, message each other
through their direct mailboxes, wake each other with CloudEvents, and feed a
competing queue that every tenth instance drains ten messages of.

Every activity records its run in the side SQLite file named by
``EDDA_SIDE_DB`` (instance, step, pid, start and end), so the test can tell a
step that ran twice because its process was killed from one that ran twice for
no reason.
"""

from __future__ import annotations

import os
import sqlite3
import time

from edda import (
    WorkflowContext,
    activity,
    publish,
    receive,
    send_event,
    send_to,
    sleep,
    subscribe,
    wait_event,
    workflow,
)

#: Instances per consumer of the competing queue (and messages each takes).
BATCH = 10


def side_db() -> sqlite3.Connection:
    side = sqlite3.connect(os.environ["EDDA_SIDE_DB"], timeout=60)
    side.execute("CREATE TABLE IF NOT EXISTS runs (n INTEGER, step TEXT, pid INTEGER, "
                 "started REAL, ended REAL)")
    return side


@activity
def record(ctx: WorkflowContext, n: int, step: str) -> str:
    started = time.time()
    with side_db() as side:
        side.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                     (n, step, os.getpid(), started, time.time()))
    return step


@activity
async def ring(ctx: WorkflowContext, n: int, target: int) -> None:
    started = time.time()
    await send_event(f"chaos.{target}", "chaos", {"from": n})
    with side_db() as side:
        side.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                     (n, "ring", os.getpid(), started, time.time()))


@workflow
async def chaos_wf(ctx: WorkflowContext, n: int) -> list[int]:
    pair = n ^ 1
    await record(ctx, n, "start")
    await subscribe(ctx, "pair", mode="direct")
    await sleep(ctx, 0.1 + (n % 5) * 0.1)
    await send_to(ctx, f"chaos-{pair}", {"from": n}, channel="pair")
    message = await receive(ctx, "pair")
    assert message.data == {"from": pair}, message.data
    if n % 2:
        await ring(ctx, n, pair)
    else:
        event = await wait_event(ctx, f"chaos.{n}")
        assert event.data == {"from": pair}, event.data
    await publish(ctx, "jobs", {"n": n})
    taken: list[int] = []
    if n % BATCH == 0:
        await subscribe(ctx, "jobs", mode="competing")
        for _ in range(BATCH):
            job = await receive(ctx, "jobs")
            taken.append(int(job.data["n"]))
    await record(ctx, n, "end")
    return taken
