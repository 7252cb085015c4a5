"""Recovery: activate the unfinished instances of this node's partitions.

Runs once when a node starts, whenever it gains partitions, and then as a slow
safety sweep (never on the hot path). It claims the unfinished instances of its
partitions that another node ran (it died, or the partition moved), restarts
its own that no actor runs, and wakes waiting instances for which an event or
a message is stored but undelivered: that is how a lost wake-up is found. It
purges events past retention. Dead nodes are found by the placement service
(`edda.actors.placement`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection

    from anyio.abc import TaskStatus

    from edda.journal.clock import Clock
    from edda.journal.leases import Claimed
    from edda.journal.stores import Stores

log = logging.getLogger("edda.recovery")


class Recovery:
    """The claim-and-activate sweep of one node: its "recovery sweep" service."""

    name = "recovery sweep"

    def __init__(
        self,
        stores: Stores,
        node_id: str,
        workflow_names: Callable[[], Collection[str]],
        activate: Callable[[Claimed], None],
        is_running: Callable[[str], bool],
        *,
        interval: float,
        clock: Clock,
        wake: Callable[[str], Awaitable[None]] | None = None,
        cancels: Callable[[], Awaitable[None]] | None = None,
        retention_seconds: float | None = None,
        batch: int = 500,
    ) -> None:
        self._stores = stores
        self._node_id = node_id
        self._names = workflow_names
        self._activate = activate
        self._is_running = is_running
        self._wake = wake
        self._cancels = cancels
        self.retention_seconds = retention_seconds
        self.interval = interval
        self._clock = clock
        self.batch = batch
        self._reported: set[str] = set()
        self._nudge = asyncio.Event()

    async def sweep(self) -> list[Claimed]:
        """Claim every orphaned instance of this node's partitions that it can run,
        and activate it.

        Returns:
            The instances this sweep activated (claimed, or owned but idle).
        """
        leases = self._stores.leases
        node_id = self._node_id
        names = list(self._names())
        claimed: list[Claimed] = []
        while True:
            more = await leases.claim_orphans(node_id, names, self.batch)
            for item in more:
                self._activate(item)
            claimed.extend(more)
            if len(more) < self.batch:
                break
        owned = await leases.owned_unfinished(node_id, names)
        for item in owned:
            if not self._is_running(item.instance_id):
                self._activate(item)
                claimed.append(item)
        await self._report_unknown(names)
        await self._redeliver()
        if self._cancels is not None:
            await self._cancels()  # cancels committed but not yet handed to a run
        if self.retention_seconds is not None:
            cutoff = self._clock.now() - self.retention_seconds
            await self._stores.waits.purge_events(cutoff)
            await self._stores.channels.purge_messages(cutoff)
        return claimed

    async def _redeliver(self) -> None:
        """Wake waiting instances for which an event or a message is stored but was
        never delivered."""
        if self._wake is None:
            return
        missed = {*await self._stores.waits.waiters_with_pending_events(),
                  *await self._stores.channels.receivers_with_pending_messages()}
        for instance_id in missed:
            await self._wake(instance_id)

    async def _report_unknown(self, names: list[str]) -> None:
        unknown = await self._stores.leases.orphans_of_unknown_workflows(self._node_id, names)
        for instance_id, name in unknown:
            if instance_id in self._reported:
                continue
            self._reported.add(instance_id)
            log.error(
                "instance %s is unfinished but its workflow %r is not registered on this "
                "node; import the module that defines it so it can be recovered",
                instance_id, name,
            )

    def sweep_soon(self) -> None:
        """Run the next sweep now rather than at the end of the interval."""
        self._nudge.set()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Sweep once (a starting node resumes what it finds), report ready, then
        sweep every ``interval`` seconds until cancelled."""
        await self.sweep()
        task_status.started()
        while True:
            handle = self._clock.call_at(self._clock.now() + self.interval, self._nudge.set)
            try:
                await self._nudge.wait()
            finally:
                handle.cancel()
            self._nudge.clear()
            try:
                await self.sweep()
            except Exception:
                log.warning("recovery sweep failed; trying again in %.0fs", self.interval,
                            exc_info=True)

    async def drain(self) -> None:
        """Nothing to finish: a sweep cut short is done again by the next one."""
