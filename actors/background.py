"""Background work of a node: short tasks that outlive the call that started them.

Hooks fired after a commit, ``on_event`` handlers, passivations and the
activation of an instance a wake-up names run here. The "background work"
service owns these tasks: when it stops (or crashes) it cancels them and waits
for them, so none is left behind. A task that fails is logged; it never takes
the node down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from anyio.abc import TaskStatus

log = logging.getLogger("edda.node")


class Background:
    """The node's "background work" service."""

    name = "background work"

    def __init__(self) -> None:
        self._running = False
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Accept work until cancelled; then cancel what still runs and wait for it."""
        self._running = True
        try:
            task_status.started()
            await asyncio.Event().wait()
        finally:
            self._running = False
            await self.drain()

    async def drain(self) -> None:
        """Cancel what is still running and wait for it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], *, what: str = "background task"
              ) -> bool:
        """Run ``coroutine`` in the background; False (and it is closed) if the node
        is not running."""
        if not self._running:
            coroutine.close()
            return False
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, what))
        return True

    def _finished(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", what, exc_info=task.exception())
