"""Membership: nodes tell each other when the spread of partitions must change.

A node announces on the database's membership subject that it joined (`NodeJoined`: the
others give it its share), that it gave partitions up (`PartitionsFreed`: the
node that should own them takes them), or that it stopped gracefully
(`NodeLeft`: its partitions are free, the others spread them among
themselves). Each message is a tagged msgspec struct, and only a hint that
makes the others rebalance now rather than at their next heartbeat: a node
that dies announces nothing, and its lease expires by the database's clock.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskStatus

    from edda.transports.base import Transport

log = logging.getLogger("edda.membership")


class NodeJoined(msgspec.Struct, frozen=True, tag="node_joined"):
    """A node started: it should get its share of the partitions."""

    node_id: str


class NodeLeft(msgspec.Struct, frozen=True, tag="node_left"):
    """A node stopped and gave its partitions back."""

    node_id: str


class PartitionsFreed(msgspec.Struct, frozen=True, tag="partitions_freed"):
    """A node gave partitions up for another node to take."""

    node_id: str


class NodeAlive(msgspec.Struct, frozen=True, tag="node_alive"):
    """A node is still there (said every liveness interval in a cluster on NATS)."""

    node_id: str


NodeMessage = NodeJoined | NodeLeft | PartitionsFreed | NodeAlive
_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[NodeMessage] = msgspec.json.Decoder(NodeMessage)


async def announce(transport: Transport, subject: str, news: NodeMessage) -> None:
    """Tell the other nodes of the database on its membership ``subject`` (best
    effort: they find out at their next heartbeat otherwise). The partitions are
    the database's, so every node on it takes part, whatever its service."""
    try:
        await transport.publish(subject, _encoder.encode(news))
    except Exception:
        log.warning("could not announce %r; the other nodes find out at their next "
                    "heartbeat", news, exc_info=True)


class MembershipListener:
    """The node's "membership listener" service: hands the news of other nodes on."""

    name = "membership listener"

    def __init__(self, transport: Transport, node_id: str,
                 on_news: Callable[[NodeMessage], None]) -> None:
        self._transport = transport
        #: The database's membership subject (set by the node once it knows it).
        self.subject = ""
        self._node_id = node_id
        self._on_news = on_news

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        async with self._transport.subscribe(self.subject) as subscription:
            task_status.started()
            async for message in subscription:
                try:
                    news = _decoder.decode(message.data)
                except msgspec.DecodeError:
                    log.warning("ignoring a malformed message on %s", self.subject)
                    continue
                if news.node_id != self._node_id:
                    self._on_news(news)

    async def drain(self) -> None:
        """Nothing to finish."""
