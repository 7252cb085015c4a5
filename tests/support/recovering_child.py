"""The body of a child process that a crash test starts, SIGKILLs, and starts again.

``python tests/support/<child>.py start DB_URL`` starts the workflow and waits to be
killed inside it; ``... recover DB_URL`` (a fresh process on the same database) lets
recovery finish the instance and prints its result as JSON. A child imports this
module as ``recovering_child``: run as a script, its own folder is first on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from edda import EddaApp
from edda.runtime.workflow import Workflow


async def start_or_finish(service: str, wf: Workflow[..., Any], kwargs: dict[str, Any],
                          mode: str, db_url: str) -> None:
    app = EddaApp(service, db_url)
    await app.initialize()
    if mode == "start":
        await wf.start(**kwargs)
        await asyncio.sleep(3600)  # the test kills the process inside the workflow
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        found = await app.find_instances(workflow_name=wf.name, status="completed")
        if found["instances"]:
            print(json.dumps(found["instances"][0]["output_data"]["result"]), flush=True)
            await app.shutdown()
            return
        await asyncio.sleep(0.01)
    await app.shutdown()
    sys.exit(f"{wf.name} did not complete within 60 s")


def main(service: str, wf: Workflow[..., Any], **kwargs: Any) -> None:
    """Run the child as its command line says (``start`` or ``recover``, the db URL)."""
    asyncio.run(start_or_finish(service, wf, kwargs, sys.argv[1], sys.argv[2]))
