"""Liveness over the transport: who is still there, known within a second.

In a cluster on NATS each node says `NodeAlive` on the membership subject every
``interval`` and answers requests on its own address. A node that has said
nothing for three intervals is probed at its address. When NATS answers that
nobody listens there (its connection is gone: the process died, or it is cut
off from NATS), the node is *unreachable*, and placement is nudged.

Unreachable is not dead. The database stays the truth: placement declares an
unreachable node dead only once its database lease shows a missed renewal
(`edda.actors.placement`), so a node cut off from NATS but not from the
database keeps its partitions and works on through the database, while a
killed one loses them within a renewal interval instead of a whole lease. A
probe that times out (the node is slow, or NATS is) proves nothing and
changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

from edda.actors.membership import NodeAlive, announce
from edda.transports.base import NoRespondersError

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskStatus

    from edda.actors.address import Addresses
    from edda.transports.base import Subscription, Transport

log = logging.getLogger("edda.liveness")

#: Intervals of silence after which a node is probed.
_SILENT_INTERVALS = 3


class Liveness:
    """The node's "liveness" service (only in a cluster on NATS)."""

    name = "liveness"

    def __init__(self, transport: Transport, node_id: str, interval: float,
                 on_change: Callable[[], None], forget_after: float) -> None:
        self._transport = transport
        self.node_id = node_id
        self.interval = interval
        self._on_change = on_change
        self._forget_after = forget_after
        #: Set by the node once it knows the database's cluster.
        self.addresses: Addresses | None = None
        self._last: dict[str, float] = {}
        self._probing: set[str] = set()
        #: Nodes NATS says nobody listens for (dead, or cut off from NATS).
        self.unreachable: set[str] = set()

    def heard(self, node_id: str) -> None:
        """``node_id`` said something: it is there. A node heard of for the first
        time, or again after it was unreachable, nudges placement."""
        if node_id == self.node_id:
            return
        new = node_id not in self._last
        self._last[node_id] = time.monotonic()
        if node_id in self.unreachable:
            self.unreachable.discard(node_id)
            log.warning("node %s is back on NATS", node_id)
            self._on_change()
        elif new:
            self._on_change()

    def left(self, node_id: str) -> None:
        """``node_id`` left the cluster gracefully."""
        self._last.pop(node_id, None)
        self.unreachable.discard(node_id)

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Answer probes, say alive every interval and probe the silent, until cancelled."""
        addresses = self.addresses
        assert addresses is not None, "the node sets its addresses before it starts"
        async with (self._transport.subscribe(addresses.node(self.node_id)) as inbox,
                    anyio.create_task_group() as tg):
            tg.start_soon(self._answer, inbox)
            task_status.started()
            while True:
                await announce(self._transport, addresses.members, NodeAlive(self.node_id))
                now = time.monotonic()
                for node_id, last in list(self._last.items()):
                    if now - last > self._forget_after:
                        self.left(node_id)  # long gone: its row was removed meanwhile
                    elif (now - last > _SILENT_INTERVALS * self.interval
                          and node_id not in self.unreachable
                          and node_id not in self._probing):
                        self._probing.add(node_id)
                        tg.start_soon(self._probe, addresses, node_id)
                await anyio.sleep(self.interval)

    async def _answer(self, inbox: Subscription) -> None:
        async for message in inbox:
            if message.reply is not None:
                await message.respond(b"alive")

    async def _probe(self, addresses: Addresses, node_id: str) -> None:
        try:
            await self._transport.request(addresses.node(node_id), b"",
                                          timeout=max(1.0, 2 * self.interval))
        except NoRespondersError:
            if time.monotonic() - self._last.get(node_id, 0.0) > self.interval:
                self.unreachable.add(node_id)
                log.warning("node %s is gone from NATS; its partitions move as soon as its "
                            "database lease shows a missed renewal (if it keeps renewing, it "
                            "is only cut off from NATS and works on through the database)",
                            node_id)
                self._on_change()
        except Exception:
            pass  # slow, or NATS is, or it is closing: proves nothing
        else:
            self._last[node_id] = time.monotonic()
        finally:
            self._probing.discard(node_id)

    async def drain(self) -> None:
        """Nothing to finish."""
