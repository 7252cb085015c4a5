"""Channel messages, subscriptions and deliveries: the SQL of mailboxes.

Every change here is an effect or job that runs in a writer transaction, most
of them in the same transaction as the journal entry that causes them:
subscribing (with its mode check), publishing (so a replay never publishes
twice), receiving (a competing message is deleted, a broadcast one marked
delivered). A competing message is first *claimed* by one instance; a claim
that was never journaled (crash in between) is found again by its claimer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.codec import decode_json, encode_json

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

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


_COLUMNS = (_m.c.id, _m.c.message_id, _m.c.channel, _m.c.data, _m.c.data_bytes,
            _m.c.metadata, _m.c.published_at)


def _stored(row: Any) -> StoredMessage:
    metadata = decode_json(row.metadata)
    assert isinstance(metadata, dict)
    return StoredMessage(int(row.id), row.message_id, row.channel, decode_json(row.data),
                         row.data_bytes, metadata, float(row.published_at))


def new_message_id() -> str:
    return uuid.uuid4().hex


def insert_message(message_id: str, channel: str, data: Any, data_bytes: bytes | None,
                   metadata: dict[str, Any], target_instance_id: str | None
                   ) -> Callable[[Connection], None]:
    """Effect (or job): store a message."""

    def effect(conn: Connection) -> None:
        conn.execute(sa.insert(_m).values(
            message_id=message_id, channel=channel,
            data=None if data_bytes is not None else encode_json(data), data_bytes=data_bytes,
            metadata=encode_json(metadata), target_instance_id=target_instance_id,
            published_at=time.time()))

    return effect


@dataclass(slots=True)
class Audience:
    """Who a freshly stored message may wake, read in the transaction that stored it."""

    waiting: list[str]
    modes: set[str]
    subscribers: set[str]


def store_message(message_id: str, address: str, data: Any, data_bytes: bytes | None,
                  metadata: dict[str, Any], target_instance_id: str | None,
                  audience: list[Audience]) -> Callable[[Connection], None]:
    """Effect: store a message and note (in ``audience``) who waits for it, so the
    publisher can wake them without another round trip."""
    insert = insert_message(message_id, address, data, data_bytes, metadata, target_instance_id)

    def effect(conn: Connection) -> None:
        insert(conn)
        waiting = list(conn.execute(sa.select(_w.c.instance_id).where(
            _w.c.kind == "channel", _w.c.key == address).distinct()).scalars())
        subs = conn.execute(sa.select(_s.c.instance_id, _s.c.mode).where(
            _s.c.address == address)).all()
        audience.append(Audience(waiting, {r.mode for r in subs},
                                 {r.instance_id for r in subs}))

    return effect


def subscribe(instance_id: str, channel: str, address: str, mode: str,
              since: float) -> Callable[[Connection], None]:
    """Effect: add (or keep) a subscription; refuses a second mode on one address.

    Raises:
        ChannelModeConflictError: If others subscribe to the channel in another mode.
    """

    def effect(conn: Connection) -> None:
        existing = conn.execute(
            sa.select(_s.c.instance_id, _s.c.mode).where(_s.c.address == address)).all()
        for row in existing:
            if row.mode != mode:
                raise ChannelModeConflictError(channel, row.mode, mode)
        if any(row.instance_id == instance_id for row in existing):
            return
        conn.execute(sa.insert(_s).values(instance_id=instance_id, channel=channel,
                                          address=address, mode=mode, since=since))

    return effect


def unsubscribe(instance_id: str, channel: str) -> Callable[[Connection], None]:
    """Effect: leave a channel, releasing competing messages claimed but not received."""

    def effect(conn: Connection) -> None:
        row = conn.execute(sa.select(_s.c.address).where(
            _s.c.instance_id == instance_id, _s.c.channel == channel)).first()
        if row is None:
            return
        conn.execute(sa.update(_m).where(_m.c.claimed_by == instance_id,
                                         _m.c.channel == row.address).values(claimed_by=None))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == instance_id,
                                         _s.c.channel == channel))

    return effect


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
_OLDEST_FREE_LOCKED = _OLDEST_FREE.with_for_update(skip_locked=True)
_CLAIM = (sa.update(_m).where(_m.c.id == sa.bindparam("row_id"), _m.c.claimed_by.is_(None))
          .values(claimed_by=sa.bindparam("iid")).returning(*_COLUMNS))


def claim_message(address: str, instance_id: str) -> Callable[[Connection], StoredMessage | None]:
    """Job: the competing message this instance claimed earlier but never received
    (a crash came in between), or else the oldest unclaimed one, now claimed."""
    params = {"address": address, "iid": instance_id}

    def job(conn: Connection) -> StoredMessage | None:
        mine = conn.execute(_MY_CLAIM, params).first()
        if mine is not None:
            return _stored(mine)
        oldest = _OLDEST_FREE_LOCKED if conn.dialect.name == "postgresql" else _OLDEST_FREE
        row_id = conn.execute(oldest, params).scalar()
        if row_id is None:
            return None
        claimed = conn.execute(_CLAIM, {"row_id": row_id, "iid": instance_id}).first()
        return None if claimed is None else _stored(claimed)

    return job


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


def next_broadcast(conn: Connection, address: str, instance_id: str,
                   since: float) -> StoredMessage | None:
    """The oldest message on ``address`` published since ``since`` that this
    instance has not received yet (broadcast and direct subscriptions)."""
    row = conn.execute(_NEXT_BROADCAST, {"address": address, "iid": instance_id,
                                         "since": since}).first()
    return None if row is None else _stored(row)


_DELETE_MESSAGE = sa.delete(_m).where(_m.c.id == sa.bindparam("row_id"))
_INSERT_DELIVERY = sa.insert(_d)


def consume(instance_id: str, message: StoredMessage,
            only_receiver: bool) -> Callable[[Connection], None]:
    """Effect: a message nobody else will receive (competing, or in a direct
    mailbox) is gone; a broadcast one is marked received by this instance."""

    def effect(conn: Connection) -> None:
        if only_receiver:
            conn.execute(_DELETE_MESSAGE, {"row_id": message.row_id})
        else:
            conn.execute(_INSERT_DELIVERY, {"instance_id": instance_id,
                                            "message_row": message.row_id})

    return effect


def receivers_with_pending_messages(conn: Connection, limit: int = 1000) -> list[str]:
    """Waiting receivers for which a message is available: lost wake-ups."""
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
    return list((conn.execute(query)).scalars())


def release_instance_channels(instance_id: str) -> Callable[[Connection], None]:
    """Effect: the instance ended; drop its subscriptions and release its claims."""

    def effect(conn: Connection) -> None:
        conn.execute(sa.update(_m).where(_m.c.claimed_by == instance_id)
                     .values(claimed_by=None))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == instance_id))

    return effect


def purge_messages(older_than: float) -> Callable[[Connection], int]:
    """Job: delete messages published before ``older_than`` that no current
    subscriber is still owed (claimed-but-unreceived competing messages stay)."""

    def job(conn: Connection) -> int:
        delivered = sa.select(_d.c.message_row).where(_d.c.instance_id == _s.c.instance_id,
                                                       _d.c.message_row == _m.c.id)
        owed = sa.exists(
            sa.select(_s.c.instance_id).where(
                _s.c.address == _m.c.channel, _s.c.mode != "competing",
                _s.c.since <= _m.c.published_at, ~sa.exists(delivered)))
        old = sa.select(_m.c.id).where(_m.c.published_at < older_than,
                                       _m.c.claimed_by.is_(None), ~owed)
        ids = list(conn.execute(old).scalars())
        if not ids:
            return 0
        conn.execute(sa.delete(_d).where(_d.c.message_row.in_(ids)))
        return int(conn.execute(sa.delete(_m).where(_m.c.id.in_(ids))).rowcount)

    return job
