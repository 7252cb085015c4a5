"""The supervisor: one_for_one restarts of actors, with a restart limit.

An actor's body is a coroutine factory; restarting an actor means calling it
again, which re-reads the journal, so a restart is a recovery. When an actor
crashes more than ``max_restarts`` times within ``period`` seconds it is given
up: ``on_give_up`` parks the instance as failed and the node carries on.
`ActorStopped` (fenced) and cancellation end an actor without a restart; `WriteLost`
(a write it did not wait for failed) restarts it like a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from edda.actors.tasks import cancel_and_wait
from edda.actors.workflow_actor import ActorStopped, WriteLost

log = logging.getLogger("edda.supervisor")

Body = Callable[[], Awaitable[None]]
GiveUp = Callable[[str, BaseException], Awaitable[None]]


class Supervisor:
    """Runs and restarts the actors of one node."""

    def __init__(
        self,
        on_give_up: GiveUp,
        *,
        max_restarts: int = 5,
        period: float = 60.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
    ) -> None:
        self._on_give_up = on_give_up
        self.max_restarts = max_restarts
        self.period = period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._actors: dict[str, asyncio.Task[None]] = {}
        self.restarts = 0

    def is_running(self, key: str) -> bool:
        """Whether an actor is live under ``key``."""
        return key in self._actors

    def __len__(self) -> int:
        return len(self._actors)

    def spawn(self, key: str, body: Body) -> bool:
        """Start an actor unless one already runs under ``key``.

        Returns:
            True if a new actor was started.
        """
        if key in self._actors:
            return False
        task = asyncio.create_task(self._supervise(key, body), name=f"edda-actor:{key}")
        self._actors[key] = task
        task.add_done_callback(lambda _t: self._actors.pop(key, None))
        return True

    async def _supervise(self, key: str, body: Body) -> None:
        crashes: deque[float] = deque()
        delay = self.backoff_initial
        while True:
            try:
                await body()
                return
            except ActorStopped as exc:
                log.warning("actor %s stopped: %s", key, exc)
                return
            except (Exception, WriteLost) as exc:
                now = time.monotonic()
                crashes.append(now)
                while crashes and crashes[0] < now - self.period:
                    crashes.popleft()
                if len(crashes) > self.max_restarts:
                    log.error("actor %s crashed %d times; giving up", key, len(crashes),
                              exc_info=exc)
                    try:
                        await self._on_give_up(key, exc)
                    except Exception:
                        log.exception("could not park actor %s as failed", key)
                    return
                log.warning("actor %s crashed (%s); restarting from its journal in %.2fs",
                            key, exc, delay, exc_info=exc)
                self.restarts += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def stop(self, key: str) -> None:
        """Cancel one actor, if it runs, and wait for it to end."""
        await cancel_and_wait(self._actors.get(key))

    async def stop_all(self) -> None:
        """Cancel every actor and wait for them to end."""
        await cancel_and_wait(*self._actors.values())
