"""A child process for crash tests: runs, or recovers, a ten-activity workflow.

Usage: ``crash_child.py start|recover DB_URL``. Each activity records that it ran
in the SQLite file named by ``EDDA_SIDE_DB`` (its own transaction, outside the
journal). With ``EDDA_BLOCK_AT=N`` activity N hangs after recording, so the
parent can SIGKILL the process at that point. ``recover`` starts an app, waits
until the workflow completes and prints the seconds from start to completion.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time

from edda import EddaApp, WorkflowContext, activity, workflow

SIDE_DB = os.environ["EDDA_SIDE_DB"]
BLOCK_AT = int(os.environ.get("EDDA_BLOCK_AT", "0"))


@activity
def step(ctx: WorkflowContext, n: int) -> int:
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(step, pid) VALUES (?, ?)", (n, os.getpid()))
    if n == BLOCK_AT:
        time.sleep(3600)
    return n * n


@workflow
async def ten_steps(ctx: WorkflowContext) -> int:
    total = 0
    for n in range(1, 11):
        total += await step(ctx, n)
    return total


async def main(mode: str, db_url: str) -> None:
    started = time.perf_counter()
    app = EddaApp("crash-test", db_url)
    await app.initialize()
    if mode == "start":
        await ten_steps.start()
        return
    while time.perf_counter() - started < 60:
        found = await app.find_instances(workflow_name="ten_steps", status="completed")
        if found["instances"]:
            print(f"{time.perf_counter() - started:.4f}", flush=True)
            await app.shutdown()
            return
        await asyncio.sleep(0.005)
    await app.shutdown()
    sys.exit("ten_steps did not complete within 60 s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
