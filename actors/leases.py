"""The node lease: a heartbeat that keeps this node's instances its own.

A node registers a lease row and renews it every third of the lease. If the
row disappears (another node declared it dead) or cannot be renewed before it
expires, the node has lost its instances: ``on_lost`` stops its actors (the
epoch fencing in the journal writer makes sure they could not write anyway),
then the node registers again and ``on_regained`` lets it claim work afresh.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus

    from edda.journal.clock import Clock
    from edda.journal.stores import LeaseStore

log = logging.getLogger("edda.leases")


def process_start_token(pid: int) -> str:
    """When process ``pid`` started (Linux clock ticks), or "" where unknown.

    Stored with a lease so that a reused pid is not taken for the node.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, start_token: str) -> bool:
    """Whether the process that registered a lease on this host still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start_token or process_start_token(pid) in ("", start_token)


class NodeLease:
    """This node's lease row and its heartbeat: the node's "lease heartbeat" service.

    The lease is written and judged by the database's clock. Locally the node
    counts the lease from the moment it *sent* each renewal, so it always believes
    its lease ends no later than the database does: when a renewal has not come
    back by then (the database is away, or another node removed the row), the
    node stops its actors before anyone else may take their instances over.
    """

    name = "lease heartbeat"

    def __init__(
        self,
        store: LeaseStore,
        node_id: str,
        service_name: str,
        lease_seconds: float,
        on_lost: Callable[[], Awaitable[None]],
        on_regained: Callable[[], Awaitable[None]],
        *,
        clock: Clock,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.service_name = service_name
        self.lease_seconds = lease_seconds
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._on_lost = on_lost
        self._on_regained = on_regained
        self._clock = clock
        self._registered = False
        #: Times the lease was lost (for tools and tests).
        self.lost = 0

    async def _register(self) -> float:
        """Register; returns until when (local monotonic time) the lease surely holds."""
        sent = self._clock.monotonic()
        await self.store.register(self.node_id, self.service_name, self.hostname, self.pid,
                                  process_start_token(self.pid), self.lease_seconds)
        self._registered = True
        return sent + self.lease_seconds

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Register (or, after a restart, renew) the lease, report ready, then renew it
        every third of the lease until cancelled."""
        valid_until = await self._register()
        task_status.started()
        while True:
            await self._clock.sleep(self.lease_seconds / 3)
            sent = self._clock.monotonic()
            try:
                renewed = await self._renew(valid_until - sent)
            except Exception:
                log.warning("could not renew the lease of node %s", self.node_id,
                            exc_info=True)
                if self._clock.monotonic() < valid_until:
                    continue
                renewed = None
            if renewed:
                valid_until = sent + self.lease_seconds
                continue
            self.lost += 1
            why = ("another node declared it dead" if renewed is False
                   else "it could not be renewed in time")
            log.error("node %s lost its lease (%s); stopping its actors", self.node_id, why)
            await self._on_lost()
            valid_until = await self._register()  # waits for the database if need be
            log.warning("node %s registered again; reclaiming work", self.node_id)
            try:
                await self._on_regained()
            except Exception:
                log.warning("reclaiming after a lost lease failed; the sweep will retry",
                            exc_info=True)

    async def _renew(self, within: float) -> bool | None:
        """Renew the lease; None if no answer came ``within`` seconds (the clock's)."""
        answer: bool | None = None
        async with anyio.create_task_group() as tg:
            async def deadline() -> None:
                await self._clock.sleep(max(within, 0.0))
                tg.cancel_scope.cancel()

            tg.start_soon(deadline)
            answer = await self.store.renew(self.node_id, self.lease_seconds)
            tg.cancel_scope.cancel()
        return answer

    async def drain(self) -> None:
        """Give the node's instances up for others to claim (bounded by the lease)."""
        await self.release()

    async def release(self) -> None:
        """Remove the lease row; the node's instances are free to claim at once.

        Waits at most one lease for an unavailable database: the row then expires
        by itself.
        """
        if not self._registered:
            return
        with anyio.move_on_after(self.lease_seconds):
            await self.store.remove([self.node_id])
            self._registered = False
