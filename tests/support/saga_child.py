"""A child process for the compensation crash test.

Usage: ``saga_child.py start|recover DB_URL``. Three activities each register a
compensation; the fourth fails, so the compensations run newest first. Every
activity and compensation records that it ran in the SQLite file named by
``EDDA_SIDE_DB``. With ``EDDA_BLOCK_UNDO=N`` the compensation of step N hangs
after recording, so the parent can SIGKILL the process mid-compensation.
``recover`` starts an app and waits until the instance has failed.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time

from edda import (
    EddaApp,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)

SIDE_DB = os.environ["EDDA_SIDE_DB"]
BLOCK_UNDO = int(os.environ.get("EDDA_BLOCK_UNDO", "0"))


def _record(what: str) -> None:
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(what, pid) VALUES (?, ?)", (what, os.getpid()))


@compensation
def undo_step(ctx: WorkflowContext, n: int) -> None:
    _record(f"undo {n}")
    if n == BLOCK_UNDO:
        time.sleep(3600)


@activity
@on_failure(undo_step)
def step(ctx: WorkflowContext, n: int) -> int:
    _record(f"step {n}")
    return n


@activity
def fail(ctx: WorkflowContext) -> None:
    raise TerminalError("step 4 failed")


@workflow
async def saga_steps(ctx: WorkflowContext) -> None:
    for n in (1, 2, 3):
        await step(ctx, n)
    await fail(ctx)


async def main(mode: str, db_url: str) -> None:
    started = time.perf_counter()
    app = EddaApp("saga-crash-test", db_url)
    await app.initialize()
    if mode == "start":
        await saga_steps.start()
        return
    while time.perf_counter() - started < 60:
        found = await app.find_instances(workflow_name="saga_steps", status="failed")
        if found["instances"]:
            await app.shutdown()
            return
        await asyncio.sleep(0.01)
    await app.shutdown()
    sys.exit("saga_steps did not fail within 60 s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
