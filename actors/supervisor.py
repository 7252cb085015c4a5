"""The actor supervisor: one_for_one restarts of actors, with a restart limit.

It is a node service ("actor supervisor"); its actors live in a task group it
owns, so none outlives it. (A stdlib `asyncio.TaskGroup`: a node may start a
few thousand actors a second, and anyio's tasks cost several times more.)

An actor's body is a coroutine factory; restarting an actor means calling it
again, which re-reads the journal, so a restart is a recovery. When an actor
crashes more than ``max_restarts`` times within ``period`` seconds it is given
up: ``on_give_up`` parks the instance as failed and the node carries on. A
crash caused by an unavailable database is restarted (with backoff) without
being counted: only faults of the workflow's own code count. `ActorStopped`
(fenced) and cancellation end an actor without a restart; `WriteLost` (a write
it did not wait for failed) restarts it like a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from edda.actors.instance_journal import ActorStopped, WriteLost
from edda.journal.faults import describe, is_transient

if TYPE_CHECKING:
    import contextvars

    from anyio.abc import TaskStatus

log = logging.getLogger("edda.supervisor")

Body = Callable[[], Awaitable[None]]
GiveUp = Callable[[str, BaseException], Awaitable[None]]


def _cause_is_transient(exc: BaseException) -> bool:
    return is_transient(exc) or (exc.__cause__ is not None and is_transient(exc.__cause__))


class Supervisor:
    """Runs and restarts the actors of one node."""

    name = "actor supervisor"

    def __init__(
        self,
        on_give_up: GiveUp,
        *,
        on_exit: Callable[[str], None] | None = None,
        context: contextvars.Context | None = None,
        max_restarts: int = 5,
        period: float = 60.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
    ) -> None:
        self._on_give_up = on_give_up
        self._on_exit = on_exit
        self._context = context
        self._labels: dict[str, str] = {}
        self.max_restarts = max_restarts
        self.period = period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._actors: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self.restarts = 0

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Own the actors until cancelled; then every actor is cancelled and awaited."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                task_status.started()
                await asyncio.Event().wait()
        finally:
            self._group = None

    async def drain(self) -> None:
        """Stop every actor (the node is stopping)."""
        await self.stop_all()

    def is_running(self, key: str) -> bool:
        """Whether an actor is live under ``key``."""
        return key in self._actors

    def __len__(self) -> int:
        return len(self._actors)

    def spawn(self, key: str, body: Body, *, label: str | None = None) -> bool:
        """Start an actor unless one already runs under ``key``; logs name it ``label``
        (``key`` by default).

        Returns:
            True if a new actor was started.

        Raises:
            RuntimeError: If the supervisor is not running.
        """
        if key in self._actors:
            return False
        if self._group is None:
            raise RuntimeError("the actor supervisor is not running")
        task = self._group.create_task(
            self._supervise(key, body), name=f"edda-actor:{key}",
            context=None if self._context is None else self._context.copy())
        self._actors[key] = task
        if label is not None:
            self._labels[key] = label
        task.add_done_callback(lambda _t: self._exited(key, task))
        return True

    def _exited(self, key: str, task: asyncio.Task[None]) -> None:
        if self._actors.get(key) is task:
            del self._actors[key]
            self._labels.pop(key, None)
        if self._on_exit is not None:
            self._on_exit(key)

    def _describe(self, key: str) -> str:
        return self._labels.get(key, key)

    async def _supervise(self, key: str, body: Body) -> None:
        crashes: deque[float] = deque()
        delay = self.backoff_initial
        while True:
            try:
                await body()
                return
            except ActorStopped as exc:
                log.warning("actor %s stopped: %s", self._describe(key), exc)
                return
            except (Exception, WriteLost) as exc:
                if _cause_is_transient(exc):
                    log.warning("actor %s paused: the database is unavailable (%s); "
                                "restarting it from its journal in %.2fs", self._describe(key),
                                describe(exc), delay)
                else:
                    now = time.monotonic()
                    crashes.append(now)
                    while crashes and crashes[0] < now - self.period:
                        crashes.popleft()
                    if len(crashes) > self.max_restarts:
                        log.error("actor %s crashed %d times; giving up and parking it as "
                                  "failed", self._describe(key), len(crashes), exc_info=exc)
                        try:
                            await self._on_give_up(key, exc)
                        except Exception:
                            log.exception("could not park actor %s as failed", key)
                        return
                    log.warning("actor %s crashed (%s); restarting from its journal in %.2fs",
                                self._describe(key), exc, delay, exc_info=exc)
                self.restarts += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    def running(self) -> list[str]:
        """The keys of the actors that run now."""
        return list(self._actors)

    async def stop(self, key: str) -> None:
        """Cancel one actor, if it runs, and wait for it to end."""
        await _cancel_and_wait(self._actors.get(key))

    async def stop_all(self) -> None:
        """Cancel every actor and wait for them to end."""
        await _cancel_and_wait(*self._actors.values())


async def _cancel_and_wait(*tasks: asyncio.Task[None] | None) -> None:
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    await asyncio.gather(*live, return_exceptions=True)
