"""Routing mail to the node that owns an instance, and receiving this node's.

After the database commits something for an instance (an event, a message, a
due timer, a cancel), the node that committed it sends one message to the
instance's partition address; only the partition's owner subscribes to it
(`edda.actors.address`). An instance of a partition this node holds is served
here without touching the transport.

`Router` batches: ids posted while the previous send is under way go together,
one `InstanceMail` per partition, so a burst (a broadcast to thousands of
waiters) costs a few messages rather than one per instance.

`PartitionInbox` is the node's "transport listener" service: it subscribes to
the address of every partition the node holds and hands what arrives to the
node. It follows the placement: `follow()` after a change subscribes to the
partitions gained (before the node sweeps them, so nothing committed
meanwhile slips between the sweep and the subscription) and unsubscribes from
those given up.

Both are at-most-once, like the transport: the recovery sweep finds what a
lost message missed, and the node sweeps at once when the transport reports a
gap.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

import anyio
import msgspec

from edda.actors.address import InstanceMail, decode_mail, encode_mail

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from anyio.abc import TaskGroup, TaskStatus

    from edda.actors.address import Addresses
    from edda.transports.base import Transport

log = logging.getLogger("edda.routing")

Kind = Literal["wake", "cancel"]
#: Most instance ids in one message, and about the most bytes of them.
_MAX_IDS = 64
_MAX_BYTES = 2048
#: How long `follow` waits for new subscriptions before the node sweeps anyway.
_FOLLOW_WAIT = 2.0


def _chunks(wake: list[str], cancel: list[str]) -> list[InstanceMail]:
    """The ids as mail of at most `_MAX_IDS` ids and about `_MAX_BYTES` of them each
    (a notification or a datagram has room for a few kilobytes)."""
    mails: list[InstanceMail] = []
    for kind, ids in (("cancel", cancel), ("wake", wake)):
        chunk: list[str] = []
        size = 0
        for instance_id in ids:
            if chunk and (len(chunk) == _MAX_IDS or size + len(instance_id) > _MAX_BYTES):
                mails.append(_mail(kind, chunk))
                chunk, size = [], 0
            chunk.append(instance_id)
            size += len(instance_id) + 3
        if chunk:
            mails.append(_mail(kind, chunk))
    return mails


def _mail(kind: str, ids: list[str]) -> InstanceMail:
    return InstanceMail(wake=ids) if kind == "wake" else InstanceMail(cancel=ids)


class Router:
    """Sends wake-ups and cancels to the owners of instances."""

    def __init__(self, transport: Transport, partition_of: Callable[[str], int],
                 is_local: Callable[[str], bool], local: Callable[[InstanceMail], None]) -> None:
        self._transport = transport
        self._partition_of = partition_of
        self._is_local = is_local
        self._local = local
        self.addresses: Addresses | None = None
        self._pending: dict[int, tuple[list[str], list[str]]] = {}
        self._ready = asyncio.Event()
        #: Messages sent, and instance ids they carried (for tools and benchmarks).
        self.sent = 0
        self.carried = 0

    def send(self, instance_id: str, kind: Kind) -> None:
        """Wake ``instance_id`` (or tell it of its cancel) on whichever node owns it."""
        if self._is_local(instance_id):
            self._local(InstanceMail(wake=[instance_id]) if kind == "wake"
                        else InstanceMail(cancel=[instance_id]))
            return
        wake, cancel = self._pending.setdefault(self._partition_of(instance_id), ([], []))
        (wake if kind == "wake" else cancel).append(instance_id)
        self._ready.set()

    async def run(self) -> None:
        """Send what is posted, batched, until cancelled."""
        if self._pending:  # posted before a restart
            self._ready.set()
        while True:
            await self._ready.wait()
            self._ready.clear()
            await asyncio.sleep(0)  # what the same step of the loop posts goes along
            pending, self._pending = self._pending, {}
            addresses = self.addresses
            if addresses is None:
                continue
            for partition, (wake, cancel) in pending.items():
                for mail in _chunks(wake, cancel):
                    self.sent += 1
                    self.carried += len(mail.wake) + len(mail.cancel)
                    try:
                        await self._transport.publish(addresses.partition(partition),
                                                      encode_mail(mail))
                    except Exception:
                        log.warning("could not send to the owner of partition %d; it finds "
                                    "what was committed at its next sweep", partition,
                                    exc_info=True)


class PartitionInbox:
    """The "transport listener" service: this node's partition subscriptions, and
    the `Router`'s sending loop."""

    name = "transport listener"

    def __init__(self, transport: Transport, router: Router,
                 held: Callable[[], Collection[int]],
                 deliver: Callable[[InstanceMail], None]) -> None:
        self._transport = transport
        self._router = router
        self._held = held
        self._deliver = deliver
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._changed = asyncio.Event()
        #: Changes asked for, and the last one the subscriptions reflect.
        self._asked = 0
        self._done = 0
        self._progress = asyncio.Event()
        self._running = False
        #: Mail heard, and mail that could not be read.
        self.heard = 0
        self.garbled = 0

    @property
    def addresses(self) -> Addresses:
        addresses = self._router.addresses
        assert addresses is not None, "the node sets its addresses before it starts"
        return addresses

    @property
    def following(self) -> set[int]:
        """The partitions subscribed to now."""
        return set(self._scopes)

    async def follow(self) -> None:
        """Bring the subscriptions in line with the partitions held now, and wait (a
        moment at most) until they are. While the service is not running there is
        nothing to wait for: it subscribes to what is held when it starts."""
        self._asked += 1
        asked = self._asked
        self._changed.set()
        if not self._running:
            return
        with anyio.move_on_after(_FOLLOW_WAIT):
            while self._done < asked:
                await self._progress.wait()

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Subscribe to the partitions held (ready once subscribed), then follow the
        placement and serve mail until cancelled."""
        self._scopes.clear()
        self._running = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._router.run)
                await self._reconcile(tg)
                task_status.started()
                while True:
                    await self._changed.wait()
                    await self._reconcile(tg)
        finally:
            self._running = False

    async def _reconcile(self, tg: TaskGroup) -> None:
        """Subscribe to what is held and not followed, drop what is followed and no
        longer held; then tell the `follow` calls made before it began."""
        asked = self._asked
        self._changed.clear()
        held = set(self._held())
        for partition in set(self._scopes) - held:
            self._scopes.pop(partition).cancel()
        for partition in sorted(held - set(self._scopes)):
            self._scopes[partition] = await tg.start(self._serve, partition)
        flush = getattr(self._transport, "flush", None)
        if flush is not None:  # the server knows of them before the node sweeps
            await flush()
        self._done = asked
        self._progress.set()
        self._progress = asyncio.Event()

    async def _serve(self, partition: int, *, task_status: TaskStatus[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            async with self._transport.subscribe(self.addresses.partition(partition)) as sub:
                task_status.started(scope)
                async for message in sub:
                    try:
                        mail = decode_mail(message.data)
                    except msgspec.DecodeError:
                        self.garbled += 1
                        continue
                    self.heard += 1
                    self._deliver(mail)

    async def drain(self) -> None:
        """Nothing to finish: mail not yet served is found again by the sweep."""
