"""The timer service: wakes passivated instances whose wait has come due.

Resident actors keep their own timers in memory. This service only looks after
waits of the passivated instances of this node's partitions: it sleeps until
the earliest such deadline (never a fixed polling interval), claims what is due
and activates it. It is nudged when this node passivates an instance or gains
partitions, and wakes at least every ``max_sleep`` seconds. Timers that fell
due while no node ran fire right after their partition is taken.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from anyio.abc import TaskStatus

    from edda.journal.clock import Clock
    from edda.journal.leases import Claimed
    from edda.journal.stores import LeaseStore

log = logging.getLogger("edda.timers")


class TimerService:
    """Claims and activates passivated instances whose waits are due: the node's
    "timer service"."""

    name = "timer service"

    def __init__(
        self,
        leases: LeaseStore,
        node_id: str,
        workflow_names: Callable[[], Collection[str]],
        activate: Callable[[Claimed], None],
        *,
        clock: Clock,
        max_sleep: float,
        batch: int = 500,
    ) -> None:
        self._leases = leases
        self._node_id = node_id
        self._names = workflow_names
        self._activate = activate
        self._clock = clock
        self.max_sleep = max_sleep
        self.batch = batch
        self._nudge = asyncio.Event()
        self.fired = 0

    def nudge(self) -> None:
        """Recompute the next deadline now."""
        self._nudge.set()

    async def run_once(self) -> float | None:
        """Activate everything due; returns the next free deadline (or None)."""
        while True:
            claimed = await self._leases.claim_due(self._node_id, list(self._names()),
                                                   self._clock.now(), self.batch)
            for item in claimed:
                self._activate(item)
            self.fired += len(claimed)
            if len(claimed) < self.batch:
                break
        names = list(self._names())
        return await self._leases.next_free_deadline(self._node_id, names)

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Serve until cancelled: sleep until the next due deadline or a nudge."""
        task_status.started()
        while True:
            self._nudge.clear()
            try:
                deadline = await self.run_once()
            except Exception:
                log.warning("timer service pass failed; retrying", exc_info=True)
                deadline = None
            now = self._clock.now()
            wake_at = now + self.max_sleep if deadline is None else min(deadline,
                                                                        now + self.max_sleep)
            if wake_at > now:
                handle = self._clock.call_at(wake_at, self._nudge.set)
                try:
                    await self._nudge.wait()
                finally:
                    handle.cancel()

    async def drain(self) -> None:
        """Nothing to finish: a claim is one transaction."""
