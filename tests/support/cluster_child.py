"""A node process of a cluster test: ``python -m tests.support.cluster_child DB_URL
LEASE`` (from the repository's root).

It prints ``ready <worker id>`` once its node runs, then obeys one command per
line on stdin and answers each with one line:

* ``start <workflow> <instance id> [json kwargs]``: start an instance with that id
  (idempotent), answer ``started <id>`` once start() returned;
* ``spawn <first> <last>``: start the chaos instances ``chaos-<n>`` for n in
  ``first..last`` at once (idempotent), answer ``spawned`` once all started;
* ``load <count>``: run ``count`` ``busy`` workflows at once, answer
  ``loaded <wall seconds> <cpu seconds>``;
* ``partitions``: answer the partitions this node holds, as JSON;
* ``resident <id>``: answer ``yes`` or ``no``: whether an actor runs the instance here;
* ``quit``: shut down gracefully and exit (``bye``).

It runs until killed otherwise. With ``EDDA_TEST_NATS`` (comma-separated server
URLs) set, the node joins the cluster over NATS; ``EDDA_TEST_RECOVERY`` sets its
recovery sweep interval (60 s by default, so that only messages explain what a
test sees).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from edda import EddaApp
from tests.support import chaos_workflows, cluster_workflows

WORKFLOWS = {name: getattr(cluster_workflows, name) for name in (
    "await_go", "read_inbox", "nap", "stamp_go", "ping", "pong", "busy", "freeze_me")}
WORKFLOWS["chaos_wf"] = chaos_workflows.chaos_wf


def say(line: str) -> None:
    print(line, flush=True)


async def main(db_url: str, lease: float) -> None:
    nats = os.environ.get("EDDA_TEST_NATS")
    app = EddaApp("cluster", db_url, lease_seconds=lease,
                  recovery_interval=float(os.environ.get("EDDA_TEST_RECOVERY", "60")),
                  nats_url=nats.split(",") if nats else None,
                  workflows=list(WORKFLOWS.values()))
    await app.initialize()
    assert app._node is not None
    placement = app._node.placement
    say(f"ready {app.worker_id}")
    while True:
        line = (await asyncio.to_thread(sys.stdin.readline)).strip()
        if not line or line == "quit":
            await app.shutdown()
            say("bye")
            return
        command, *args = line.split(" ", 3)
        if command == "start":
            kwargs = json.loads(args[2]) if len(args) > 2 else {}
            started = await WORKFLOWS[args[0]].start(instance_id=args[1], **kwargs)
            say(f"started {started}")
        elif command == "spawn":
            first, last = int(args[0]), int(args[1])
            chaos = chaos_workflows.chaos_wf
            await asyncio.gather(*(chaos.start(instance_id=f"chaos-{n}", n=n)
                                   for n in range(first, last + 1)))
            say("spawned")
        elif command == "load":
            busy = cluster_workflows.busy
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(busy.start(n=n) for n in range(int(args[0]))))
            say(f"loaded {time.perf_counter() - wall} {time.process_time() - cpu}")
        elif command == "resident":
            say("yes" if app.supervisor.is_running(args[0]) else "no")
        elif command == "partitions":
            say(json.dumps(sorted(placement.owned)))
        else:
            say(f"unknown command {command!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
