"""Membership: nodes tell each other when they leave.

A node that stops gracefully gives its instances back (its lease row goes), then
announces `NodeLeft` on its service's subject, so the other nodes of the service
claim those instances at once instead of at their next sweep. The message is a
tagged msgspec struct. Like every transport message it is only a hint: a node
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


class NodeLeft(msgspec.Struct, frozen=True, tag="node_left"):
    """A node of the service stopped and gave its instances back."""

    node_id: str


NodeMessage = NodeLeft
_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[NodeMessage] = msgspec.json.Decoder(NodeMessage)


def members_subject(service_name: str) -> str:
    """The subject on which the nodes of ``service_name`` announce themselves."""
    token = "".join(c if c.isalnum() or c in "-_" else "_" for c in service_name) or "_"
    return f"edda.nodes.{token}"


async def announce_left(transport: Transport, service_name: str, node_id: str) -> None:
    """Tell the other nodes of the service that this one left (best effort)."""
    try:
        await transport.publish(members_subject(service_name), _encoder.encode(NodeLeft(node_id)))
    except Exception:
        log.warning("could not announce that node %s left; the others find its instances "
                    "at their next sweep", node_id, exc_info=True)


class MembershipListener:
    """The node's "membership listener" service: reacts when another node leaves."""

    name = "membership listener"

    def __init__(self, transport: Transport, service_name: str, node_id: str,
                 on_left: Callable[[str], None]) -> None:
        self._transport = transport
        self._subject = members_subject(service_name)
        self._node_id = node_id
        self._on_left = on_left

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        async with self._transport.subscribe(self._subject) as subscription:
            task_status.started()
            async for message in subscription:
                try:
                    news = _decoder.decode(message.data)
                except msgspec.DecodeError:
                    log.warning("ignoring a malformed message on %s", self._subject)
                    continue
                if isinstance(news, NodeLeft) and news.node_id != self._node_id:
                    log.info("node %s left; claiming its instances", news.node_id)
                    self._on_left(news.node_id)

    async def drain(self) -> None:
        """Nothing to finish."""
