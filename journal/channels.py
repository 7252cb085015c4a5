"""Channel messages, subscriptions and deliveries: the store behind mailboxes.

Every change here is a write that runs in a writer transaction, most of them in
the same transaction as the journal entry that causes them: subscribing (with
its mode check), publishing (so a replay never publishes twice), receiving (a
competing or direct message is deleted, a broadcast one marked delivered). A
competing message is first *claimed* by one instance and its receipt journaled
in the same transaction; a claim whose receipt never committed (a crash in
between) is found again by its claimer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.appends import InstanceChange, Take, Taken
from edda.journal.codec import decode_json, encode_json
from edda.journal.dialects import POSTGRESQL, SQLITE
from edda.journal.entries import MessagePublished, MessageReceived
from edda.journal.writes import SqlStore, Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import Effect, WriteContext

_m, _s, _d = schema.channel_messages, schema.subscriptions, schema.channel_deliveries
_w, _i = schema.waits, schema.instances


class ChannelModeConflictError(Exception):
    """A channel already has subscribers in another mode."""

    def __init__(self, channel: str, existing_mode: str, requested_mode: str) -> None:
        super().__init__(
            f"Channel '{channel}' is already configured as '{existing_mode}' mode. "
            f"Cannot subscribe with '{requested_mode}' mode.")
        self.channel = channel
        self.existing_mode = existing_mode
        self.requested_mode = requested_mode

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.channel, self.existing_mode, self.requested_mode))


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A channel message as stored."""

    row_id: int
    message_id: str
    channel: str
    data: Any
    data_bytes: bytes | None
    metadata: dict[str, Any]
    published_at: float


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a freshly stored message may wake, read in the transaction that stored it."""

    waiting: list[str]
    modes: set[str]
    subscribers: set[str]


_COLUMNS = (_m.c.id, _m.c.message_id, _m.c.channel, _m.c.data, _m.c.data_bytes,
            _m.c.metadata, _m.c.published_at)


def _stored(row: Any) -> StoredMessage:
    metadata = decode_json(row.metadata)
    assert isinstance(metadata, dict)
    return StoredMessage(int(row.id), row.message_id, row.channel, decode_json(row.data),
                         row.data_bytes, metadata, float(row.published_at))


def new_message_id() -> str:
    return uuid.uuid4().hex


def received(message: StoredMessage, position: str, call: int, channel: str) -> MessageReceived:
    """The journal entry that records the receipt of ``message``."""
    return MessageReceived(position=position, call=call, channel=channel,
                           message_id=message.message_id, row_id=message.row_id,
                           data=message.data, data_bytes=message.data_bytes,
                           metadata=message.metadata, published_at=message.published_at)


# -- writes ----------------------------------------------------------------------------

class StoreMessage(Write[Audience], frozen=True):
    """Store a message; the result says who waits for it and who subscribes, so the
    publisher can wake them without another round trip."""

    message_id: str
    address: str
    data: Any
    data_bytes: bytes | None
    metadata: dict[str, Any]
    target_instance_id: str | None

    def apply(self, conn: Connection, ctx: WriteContext) -> Audience:
        conn.execute(sa.insert(_m).values(
            message_id=self.message_id, channel=self.address,
            data=None if self.data_bytes is not None else encode_json(self.data),
            data_bytes=self.data_bytes, metadata=encode_json(self.metadata),
            target_instance_id=self.target_instance_id, published_at=ctx.now))
        waiting = list(conn.execute(sa.select(_w.c.instance_id).where(
            _w.c.kind == "channel", _w.c.key == self.address).distinct()).scalars())
        subs = conn.execute(sa.select(_s.c.instance_id, _s.c.mode).where(
            _s.c.address == self.address)).all()
        return Audience(waiting, {r.mode for r in subs}, {r.instance_id for r in subs})


class Subscribe(Write[None], frozen=True):
    """Effect: add (or keep) a subscription; refuses a second mode on one address.

    Raises:
        ChannelModeConflictError: If others subscribe to the channel in another mode.
    """

    instance_id: str
    channel: str
    address: str
    mode: str
    since: float

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        existing = conn.execute(
            sa.select(_s.c.instance_id, _s.c.mode).where(_s.c.address == self.address)).all()
        for row in existing:
            if row.mode != self.mode:
                raise ChannelModeConflictError(self.channel, row.mode, self.mode)
        if any(row.instance_id == self.instance_id for row in existing):
            return
        conn.execute(sa.insert(_s).values(instance_id=self.instance_id, channel=self.channel,
                                          address=self.address, mode=self.mode,
                                          since=self.since))


class Unsubscribe(Write[None], frozen=True):
    """Effect: leave a channel, releasing competing messages claimed but not received."""

    instance_id: str
    channel: str

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        row = conn.execute(sa.select(_s.c.address).where(
            _s.c.instance_id == self.instance_id, _s.c.channel == self.channel)).first()
        if row is None:
            return
        conn.execute(sa.update(_m).where(_m.c.claimed_by == self.instance_id,
                                         _m.c.channel == row.address).values(claimed_by=None))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == self.instance_id,
                                         _s.c.channel == self.channel))


_DELETE_MESSAGE = sa.delete(_m).where(_m.c.id == sa.bindparam("row_id"))
_INSERT_DELIVERY = sa.insert(_d)


class Consume(Write[None], frozen=True):
    """Effect: a message nobody else will receive (competing, or in a direct mailbox)
    is gone; a broadcast one is marked received by this instance."""

    instance_id: str
    row_id: int
    only_receiver: bool

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        if self.only_receiver:
            conn.execute(_DELETE_MESSAGE, {"row_id": self.row_id})
        else:
            conn.execute(_INSERT_DELIVERY, {"instance_id": self.instance_id,
                                            "message_row": self.row_id})


class ReleaseChannels(Write[None], frozen=True):
    """Effect: the instance ended; drop its subscriptions and release its claims."""

    instance_id: str

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(sa.update(_m).where(_m.c.claimed_by == self.instance_id)
                     .values(claimed_by=None))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == self.instance_id))


# A competing receive runs these for every message: built once, not per call.
_MY_CLAIM = (sa.select(*_COLUMNS)
             .where(_m.c.channel == sa.bindparam("address"),
                    _m.c.claimed_by == sa.bindparam("iid"))
             .order_by(_m.c.id).limit(1))
_OLDEST_FREE = (sa.select(_m.c.id)
                .where(_m.c.channel == sa.bindparam("address"), _m.c.claimed_by.is_(None),
                       sa.or_(_m.c.target_instance_id.is_(None),
                              _m.c.target_instance_id == sa.bindparam("iid")))
                .order_by(_m.c.id).limit(1))
_OLDEST_FREE_FOR = {d.name: d.skip_locked(_OLDEST_FREE) for d in (SQLITE, POSTGRESQL)}
_CLAIM = (sa.update(_m).where(_m.c.id == sa.bindparam("row_id"), _m.c.claimed_by.is_(None))
          .values(claimed_by=sa.bindparam("iid")).returning(*_COLUMNS))


def _claim_message(conn: Connection, ctx: WriteContext, address: str,
                   instance_id: str) -> StoredMessage | None:
    """The competing message this instance claimed earlier but never received (a
    crash came in between), or else the oldest unclaimed one, now claimed."""
    params = {"address": address, "iid": instance_id}
    mine = conn.execute(_MY_CLAIM, params).first()
    if mine is not None:
        return _stored(mine)
    row_id = conn.execute(_OLDEST_FREE_FOR[ctx.dialect.name], params).scalar()
    if row_id is None:
        return None
    claimed = conn.execute(_CLAIM, {"row_id": row_id, "iid": instance_id}).first()
    return None if claimed is None else _stored(claimed)


#: Another competing receiver waiting on the address, if a message it may take is
#: left in the queue.
_NEXT_RECEIVER = (
    sa.select(_w.c.instance_id)
    .join(_s, sa.and_(_s.c.instance_id == _w.c.instance_id, _s.c.address == _w.c.key,
                      _s.c.mode == "competing"))
    .where(_w.c.kind == "channel", _w.c.key == sa.bindparam("address"),
           _w.c.instance_id != sa.bindparam("iid"),
           sa.exists(sa.select(_m.c.id).where(
               _m.c.channel == sa.bindparam("address"), _m.c.claimed_by.is_(None),
               sa.or_(_m.c.target_instance_id.is_(None),
                      _m.c.target_instance_id == _w.c.instance_id))))
    .limit(1))


class TakeCompeting(Take, frozen=True, kw_only=True):
    """Claim the next competing message on ``address`` and journal its receipt at
    ``seq`` in the same transaction (with ``change`` and ``effects``, e.g. ending a
    wait); nothing is written when there is none.

    `Taken.result` names another receiver waiting on the address when messages are
    left in the queue, so that the taker can wake it: a publish wakes one receiver,
    which may be busy or about to end, and this hands the queue on.
    """

    address: str
    channel: str
    position: str
    call: int
    change: InstanceChange | None = None
    effects: tuple[Effect, ...] = ()

    def find(self, conn: Connection, ctx: WriteContext) -> Taken | None:
        message = _claim_message(conn, ctx, self.address, self.instance_id)
        if message is None:
            return None
        entry = received(message, self.position, self.call, self.channel)
        consumed = Consume(self.instance_id, message.row_id, only_receiver=True)
        next_receiver = conn.execute(_NEXT_RECEIVER, {"address": self.address,
                                                      "iid": self.instance_id}).scalar()
        return Taken(entry, self.change, (*self.effects, consumed), next_receiver)


class PublishDurably(Take, frozen=True, kw_only=True):
    """Store a message and journal its `MessagePublished` entry in one transaction;
    ``send_to``'s answer (does the receiver subscribe?) is read in it too.
    `Taken.result` is the message's `Audience`."""

    store: StoreMessage
    position: str
    call: int
    direct: bool

    def find(self, conn: Connection, ctx: WriteContext) -> Taken | None:
        audience = self.store.apply(conn, ctx)
        target = self.store.target_instance_id
        subscribed = self.direct and target in audience.subscribers
        entry = MessagePublished(position=self.position, call=self.call,
                                 channel=self.store.address, message_id=self.store.message_id,
                                 receiver_subscribed=subscribed, direct=self.direct)
        return Taken(entry, None, (), audience)


class PurgeMessages(Write[int], frozen=True):
    """Delete messages published before ``older_than`` that no current subscriber
    is still owed (claimed-but-unreceived competing messages stay)."""

    older_than: float

    def apply(self, conn: Connection, ctx: WriteContext) -> int:
        # Correlated to both enclosing queries: the subscriber and the message.
        delivered = (sa.select(_d.c.message_row)
                     .where(_d.c.instance_id == _s.c.instance_id, _d.c.message_row == _m.c.id)
                     .correlate(_s, _m))
        owed = sa.exists(
            sa.select(_s.c.instance_id).where(
                _s.c.address == _m.c.channel, _s.c.mode != "competing",
                _s.c.since <= _m.c.published_at, ~sa.exists(delivered)))
        old = sa.select(_m.c.id).where(_m.c.published_at < self.older_than,
                                       _m.c.claimed_by.is_(None), ~owed)
        ids = list(conn.execute(old).scalars())
        if not ids:
            return 0
        conn.execute(sa.delete(_d).where(_d.c.message_row.in_(ids)))
        return int(conn.execute(sa.delete(_m).where(_m.c.id.in_(ids))).rowcount)


# -- reads -----------------------------------------------------------------------------

_delivered = sa.select(_d.c.message_row).where(_d.c.instance_id == sa.bindparam("iid"),
                                              _d.c.message_row == _m.c.id)
_NEXT_BROADCAST = (
    sa.select(*_COLUMNS)
    .where(_m.c.channel == sa.bindparam("address"), _m.c.published_at >= sa.bindparam("since"),
           _m.c.claimed_by.is_(None),
           sa.or_(_m.c.target_instance_id.is_(None),
                  _m.c.target_instance_id == sa.bindparam("iid")),
           ~sa.exists(_delivered))
    .order_by(_m.c.id).limit(1)
)


def _next_broadcast(conn: Connection, address: str, instance_id: str,
                    since: float) -> StoredMessage | None:
    row = conn.execute(_NEXT_BROADCAST, {"address": address, "iid": instance_id,
                                         "since": since}).first()
    return None if row is None else _stored(row)


def pending_messages_query(instance_id: str | None, limit: int) -> sa.Select[Any]:
    """Waiting receivers for which a message is available (lost wake-ups)."""
    delivered = sa.select(_d.c.message_row).where(_d.c.instance_id == _w.c.instance_id,
                                                   _d.c.message_row == _m.c.id)
    available = sa.or_(
        sa.and_(_s.c.mode == "competing",
                sa.or_(_m.c.claimed_by.is_(None), _m.c.claimed_by == _w.c.instance_id)),
        sa.and_(_s.c.mode != "competing", _m.c.claimed_by.is_(None),
                _m.c.published_at >= _s.c.since, ~sa.exists(delivered)),
    )
    query = (
        sa.select(_w.c.instance_id)
        .join(_s, sa.and_(_s.c.instance_id == _w.c.instance_id, _s.c.address == _w.c.key))
        .join(_m, sa.and_(_m.c.channel == _w.c.key,
                          sa.or_(_m.c.target_instance_id.is_(None),
                                 _m.c.target_instance_id == _w.c.instance_id)))
        .where(_w.c.kind == "channel", available)
        .distinct().limit(limit)
    )
    if instance_id is not None:
        query = query.where(_w.c.instance_id == instance_id)
    return query


class SqlChannelStore(SqlStore):
    """`ChannelStore` on SQLite or PostgreSQL."""

    async def publish(self, message: StoreMessage) -> Audience:
        return await self._write(message)

    async def next_broadcast(self, address: str, instance_id: str,
                             since: float) -> StoredMessage | None:
        return await self._db.query(
            lambda conn: _next_broadcast(conn, address, instance_id, since), quick=True,
            patient=True)

    async def receivers_with_pending_messages(self, limit: int = 1000) -> list[str]:
        query = pending_messages_query(None, limit)
        return await self._db.query(lambda conn: list(conn.execute(query).scalars()),
                                    patient=True)

    async def purge_messages(self, older_than: float) -> int:
        return await self._write(PurgeMessages(older_than))
