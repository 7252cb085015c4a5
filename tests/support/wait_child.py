"""A child process for crash tests of durable waits.

Usage: ``wait_child.py MODE DB_URL`` with ``EDDA_SIDE_DB`` naming a SQLite file
where every step records that it ran. The workflow: step 1, sleep 0.5 s,
step 2, wait for the event ``go``, step 3.

* ``start``: start the workflow, print ``suspended`` when start() returns (the
  workflow sleeps), then hang until killed.
* ``until-event``: recover, print ``waiting`` once the workflow waits for the
  event, then hang until killed.
* ``finish``: recover, send ``go``, print the seconds until completion.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time

from edda import EddaApp, WorkflowContext, activity, send_event, sleep, wait_event, workflow

SIDE_DB = os.environ["EDDA_SIDE_DB"]


@activity
def step(ctx: WorkflowContext, n: int) -> int:
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(step, pid) VALUES (?, ?)", (n, os.getpid()))
    return n


@workflow
async def wait_steps(ctx: WorkflowContext) -> str:
    await step(ctx, 1)
    await sleep(ctx, 0.5)
    await step(ctx, 2)
    event = await wait_event(ctx, "go")
    await step(ctx, 3)
    return str(event.data["word"])


async def _status(app: EddaApp) -> str | None:
    found = await app.find_instances(workflow_name="wait_steps")
    return found["instances"][0]["status"] if found["instances"] else None


async def main(mode: str, db_url: str) -> None:
    started = time.perf_counter()
    app = EddaApp("wait-crash", db_url)
    await app.initialize()
    if mode == "start":
        await wait_steps.start()
        print("suspended", flush=True)
        await asyncio.Event().wait()
    if mode == "until-event":
        while await _status(app) != "waiting_for_message":
            if time.perf_counter() - started > 60:
                sys.exit("wait_steps did not reach wait_event within 60 s")
            await asyncio.sleep(0.005)
        print("waiting", flush=True)
        await asyncio.Event().wait()
    await send_event("go", "wait-child", {"word": "done"})
    while await _status(app) != "completed":
        if time.perf_counter() - started > 60:
            sys.exit("wait_steps did not complete within 60 s")
        await asyncio.sleep(0.005)
    print(f"{time.perf_counter() - started:.4f}", flush=True)
    await app.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
