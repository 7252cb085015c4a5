"""Durable waits and events: the rows beside the journal that make waits findable.

A wait row exists while an instance waits (timer, event or channel message); it
is written with the `WaitStarted` entry and removed with the entry that resolves
the wait. Events are stored once and delivered to each instance at most once: a
delivery row is written in the same transaction as the `EventReceived` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.channels import ReleaseChannels
from edda.journal.codec import decode_json, encode_json
from edda.journal.writes import SqlStore, Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import WriteContext

_w, _e, _d, _i = schema.waits, schema.events, schema.event_deliveries, schema.instances

# Hot statements are built once: building them costs more than running them.
_ADD_WAIT = sa.insert(_w)
_END_WAIT = sa.delete(_w).where(_w.c.instance_id == sa.bindparam("iid"),
                                _w.c.position == sa.bindparam("pos"))
_DELIVERED = sa.insert(_d)
_NEXT_EVENT = (
    sa.select(_e.c.id, _e.c.attributes, _e.c.data_bytes)
    .where(_e.c.type == sa.bindparam("etype"), _e.c.published_at >= sa.bindparam("since"),
           sa.or_(_e.c.target_instance_id.is_(None),
                  _e.c.target_instance_id == sa.bindparam("iid")),
           ~sa.exists(sa.select(_d.c.event_id).where(_d.c.instance_id == sa.bindparam("iid"),
                                                     _d.c.event_id == _e.c.id)))
    .order_by(_e.c.id)
    .limit(1)
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its row id, CloudEvent attributes and binary data."""

    id: int
    attributes: dict[str, Any]
    data_bytes: bytes | None


# -- writes ----------------------------------------------------------------------------

class AddWait(Write[None], frozen=True):
    """Effect: the instance waits (a timer, an event type or a channel address)."""

    instance_id: str
    position: str
    kind: str
    key: str | None
    deadline: float | None

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(_ADD_WAIT, {"instance_id": self.instance_id, "position": self.position,
                                 "kind": self.kind, "key": self.key, "deadline": self.deadline,
                                 "created_at": ctx.now})


class EndWait(Write[None], frozen=True):
    """Effect: the wait at ``position`` is over."""

    instance_id: str
    position: str

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(_END_WAIT, {"iid": self.instance_id, "pos": self.position})


class MarkDelivered(Write[None], frozen=True):
    """Effect: this event reached this instance (it never will again)."""

    instance_id: str
    event_id: int

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(_DELIVERED, {"instance_id": self.instance_id, "event_id": self.event_id,
                                  "delivered_at": ctx.now})


class EndAllWaits(Write[None], frozen=True):
    """Effect: the instance ended: no wait of it is pending any more, and it
    subscribes to nothing (its unreceived competing claims go back to the queue)."""

    instance_id: str

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(sa.delete(_w).where(_w.c.instance_id == self.instance_id))
        ReleaseChannels(self.instance_id).apply(conn, ctx)


class StoreEvent(Write[list[str]], frozen=True):
    """Store an event; the result names the instances waiting for it (read in the
    same transaction, so the caller can wake them without another round trip)."""

    event_type: str
    attributes: dict[str, Any]
    data_bytes: bytes | None
    target_instance_id: str | None

    def apply(self, conn: Connection, ctx: WriteContext) -> list[str]:
        conn.execute(sa.insert(_e).values(
            type=self.event_type, attributes=encode_json(self.attributes),
            data_bytes=self.data_bytes, target_instance_id=self.target_instance_id,
            published_at=ctx.now))
        return event_waiters(conn, self.event_type, self.target_instance_id)


class PurgeEvents(Write[int], frozen=True):
    """Delete events (and their deliveries) published before ``older_than``, and the
    marks of journal writers that have not written since then."""

    older_than: float

    def apply(self, conn: Connection, ctx: WriteContext) -> int:
        marks = schema.writer_marks
        conn.execute(sa.delete(marks).where(marks.c.stamped_at < self.older_than))
        old = sa.select(_e.c.id).where(_e.c.published_at < self.older_than)
        conn.execute(sa.delete(_d).where(_d.c.event_id.in_(old)))
        return int(conn.execute(sa.delete(_e).where(_e.c.published_at < self.older_than)
                                ).rowcount)


# -- reads -----------------------------------------------------------------------------

def event_waiters(conn: Connection, event_type: str, target_instance_id: str | None) -> list[str]:
    """Instances waiting for events of this type (only the target, if one is named)."""
    query = sa.select(_w.c.instance_id).where(_w.c.kind == "event", _w.c.key == event_type)
    if target_instance_id is not None:
        query = query.where(_w.c.instance_id == target_instance_id)
    return list((conn.execute(query.distinct())).scalars())


def _next_event(conn: Connection, instance_id: str, event_type: str,
                since: float) -> StoredEvent | None:
    row = conn.execute(_NEXT_EVENT, {"etype": event_type, "since": since,
                                     "iid": instance_id}).first()
    if row is None:
        return None
    attributes = decode_json(row.attributes)
    assert isinstance(attributes, dict)
    return StoredEvent(int(row.id), attributes, row.data_bytes)


def pending_events_query(instance_id: str | None, limit: int) -> sa.Select[Any]:
    """Waiting instances for which an undelivered event of their type is stored."""
    delivered = sa.select(_d.c.event_id).where(_d.c.instance_id == _w.c.instance_id,
                                                _d.c.event_id == _e.c.id)
    query = (
        sa.select(_w.c.instance_id)
        .join(_i, _i.c.instance_id == _w.c.instance_id)
        .join(_e, sa.and_(_e.c.type == _w.c.key, _e.c.published_at >= _i.c.started_at,
                          sa.or_(_e.c.target_instance_id.is_(None),
                                 _e.c.target_instance_id == _w.c.instance_id)))
        .where(_w.c.kind == "event", ~sa.exists(delivered))
        .distinct().limit(limit)
    )
    if instance_id is not None:
        query = query.where(_w.c.instance_id == instance_id)
    return query


class SqlWaitStore(SqlStore):
    """`WaitStore` on SQLite or PostgreSQL."""

    async def store_event(self, event_type: str, attributes: dict[str, Any],
                          data_bytes: bytes | None, target_instance_id: str | None) -> list[str]:
        return await self._write(StoreEvent(event_type, attributes, data_bytes,
                                                 target_instance_id))

    async def event_waiters(self, event_type: str, target_instance_id: str | None) -> list[str]:
        return await self._db.query(
            lambda conn: event_waiters(conn, event_type, target_instance_id), quick=True,
            patient=True)

    async def next_event(self, instance_id: str, event_type: str,
                         since: float) -> StoredEvent | None:
        return await self._db.query(
            lambda conn: _next_event(conn, instance_id, event_type, since), quick=True,
            patient=True)

    async def waiters_with_pending_events(self, limit: int = 1000) -> list[str]:
        query = pending_events_query(None, limit)
        return await self._db.query(lambda conn: list(conn.execute(query).scalars()),
                                    patient=True)

    async def purge_events(self, older_than: float) -> int:
        return await self._write(PurgeEvents(older_than))
