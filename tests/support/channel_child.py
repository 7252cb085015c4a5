"""A child process hosting competing job workers, for crash tests.

Usage: ``channel_child.py workers N DB_URL`` starts N workers on the competing
channel ``jobs``; ``channel_child.py recover DB_URL`` only recovers whatever
dead nodes left behind. Either prints ``ready`` and then serves until killed.
Every job's side effect is recorded in the SQLite file ``EDDA_SIDE_DB``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys

from edda import EddaApp, WorkflowContext, activity, receive, subscribe, workflow

SIDE_DB = os.environ["EDDA_SIDE_DB"]


@activity
def handle(ctx: WorkflowContext, n: int) -> int:
    with sqlite3.connect(SIDE_DB, timeout=60) as side:
        side.execute("INSERT INTO handled(n, pid) VALUES (?, ?)", (n, os.getpid()))
    return n


@workflow
async def crash_worker(ctx: WorkflowContext, done: int = 0) -> int:
    await subscribe(ctx, "jobs", mode="competing")
    while True:
        message = await receive(ctx, "jobs")
        await handle(ctx, message.data["n"])
        done += 1
        if done % 25 == 0:
            await ctx.recur(done=done)


async def main() -> None:
    db_url = sys.argv[-1]
    # Without a cluster transport, wake-ups do not cross processes: a short sweep
    # interval lets recovered waiting workers find queued messages quickly.
    app = EddaApp("channel-crash", db_url, lease_seconds=5, recovery_interval=0.3)
    await app.initialize()
    if sys.argv[1] == "workers":
        for _ in range(int(sys.argv[2])):
            await crash_worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
