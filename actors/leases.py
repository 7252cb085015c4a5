"""The node lease: a heartbeat that keeps this node's instances its own.

A node registers a lease row and renews it every third of the lease. If the
row disappears (another node declared it dead) or cannot be renewed before it
expires, the node has lost its instances: ``on_lost`` stops its actors (the
epoch fencing in the journal writer makes sure they could not write anyway),
then the node registers again and ``on_regained`` lets it claim work afresh.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edda.actors.tasks import cancel_and_wait

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

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
    """This node's lease row and its heartbeat."""

    def __init__(
        self,
        store: LeaseStore,
        node_id: str,
        service_name: str,
        lease_seconds: float,
        on_lost: Callable[[], Awaitable[None]],
        on_regained: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.service_name = service_name
        self.lease_seconds = lease_seconds
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._on_lost = on_lost
        self._on_regained = on_regained
        self._task: asyncio.Task[None] | None = None

    async def _register(self) -> None:
        await self.store.register(self.node_id, self.service_name, self.hostname, self.pid,
                                  process_start_token(self.pid), self.lease_seconds)

    async def acquire(self) -> None:
        """Register the lease and start the heartbeat."""
        await self._register()
        self._task = asyncio.create_task(self._heartbeat(), name="edda-lease-heartbeat")

    async def _heartbeat(self) -> None:
        valid_until = time.monotonic() + self.lease_seconds
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = await self.store.renew(self.node_id, self.lease_seconds)
            except Exception:
                log.warning("could not renew the lease of node %s", self.node_id, exc_info=True)
                if time.monotonic() < valid_until:
                    continue
                renewed = False
            if renewed:
                valid_until = time.monotonic() + self.lease_seconds
                continue
            log.error("node %s lost its lease; stopping its actors", self.node_id)
            await self._on_lost()
            try:
                await self._register()
            except Exception:
                log.warning("node %s could not register again; retrying", self.node_id,
                            exc_info=True)
                continue
            valid_until = time.monotonic() + self.lease_seconds
            log.warning("node %s registered again; reclaiming work", self.node_id)
            try:
                await self._on_regained()
            except Exception:
                log.warning("reclaiming after a lost lease failed; the sweep will retry",
                            exc_info=True)

    async def release(self) -> None:
        """Stop the heartbeat and give the node's instances up for others to claim."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.store.remove([self.node_id])
