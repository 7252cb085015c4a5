"""Durable waits and events: the rows beside the journal that make waits findable.

A wait row exists while an instance waits (timer or event); it is written with
the `WaitStarted` entry and removed with the entry that resolves the wait.
Events are stored once and delivered to each instance at most once: a
delivery row is written in the same transaction as the `EventReceived` entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.channels import release_instance_channels
from edda.journal.codec import decode_json, encode_json
from edda.journal.nodes import Claimed

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from sqlalchemy import Connection

_w, _e, _d, _i, _n = (schema.waits, schema.events, schema.event_deliveries, schema.instances,
                      schema.nodes)


def _free() -> sa.ColumnElement[bool]:
    return sa.or_(_i.c.owner_node.is_(None), _i.c.owner_node.not_in(sa.select(_n.c.node_id)))


def _claimable(workflow_names: Any) -> sa.ColumnElement[bool]:
    return sa.and_(_free(), _i.c.workflow_name.in_(workflow_names),
                   _i.c.status.in_(schema.WAITING_STATUSES + schema.UNFINISHED_STATUSES))


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
_CLAIM_ONE = (
    sa.update(_i)
    .where(_i.c.instance_id == sa.bindparam("iid"),
           _claimable(sa.bindparam("names", expanding=True)))
    .values(owner_node=sa.bindparam("node"), epoch=_i.c.epoch + 1)
    .returning(_i.c.instance_id, _i.c.workflow_name, _i.c.epoch)
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its row id, CloudEvent attributes and binary data."""

    id: int
    attributes: dict[str, Any]
    data_bytes: bytes | None


def add_wait(instance_id: str, position: str, kind: str, key: str | None,
             deadline: float | None) -> Callable[[Connection], None]:
    """Effect: record that an instance waits."""

    def effect(conn: Connection) -> None:
        conn.execute(_ADD_WAIT, {"instance_id": instance_id, "position": position, "kind": kind,
                                 "key": key, "deadline": deadline, "created_at": time.time()})

    return effect


def end_wait(instance_id: str, position: str) -> Callable[[Connection], None]:
    """Effect: the wait is over."""

    def effect(conn: Connection) -> None:
        conn.execute(_END_WAIT, {"iid": instance_id, "pos": position})

    return effect


def mark_delivered(instance_id: str, event_id: int) -> Callable[[Connection], None]:
    """Effect: this event reached this instance (it never will again)."""

    def effect(conn: Connection) -> None:
        conn.execute(_DELIVERED, {"instance_id": instance_id, "event_id": event_id,
                                  "delivered_at": time.time()})

    return effect


def end_all_waits(instance_id: str) -> Callable[[Connection], None]:
    """Effect: the instance finished: no wait of it is pending any more, and it
    subscribes to nothing (its unreceived competing claims go back to the queue)."""
    release = release_instance_channels(instance_id)

    def effect(conn: Connection) -> None:
        conn.execute(sa.delete(_w).where(_w.c.instance_id == instance_id))
        release(conn)

    return effect


def insert_event(event_type: str, attributes: dict[str, Any], data_bytes: bytes | None,
                 target_instance_id: str | None) -> Callable[[Connection], int]:
    """Job: store an event; returns its id."""

    def job(conn: Connection) -> int:
        result = conn.execute(sa.insert(_e).values(
            type=event_type, attributes=encode_json(attributes), data_bytes=data_bytes,
            target_instance_id=target_instance_id, published_at=time.time(),
        ).returning(_e.c.id))
        return int(result.scalar_one())

    return job


def event_waiters(conn: Connection, event_type: str,
                        target_instance_id: str | None) -> list[str]:
    """Instances waiting for events of this type (only the target, if one is named)."""
    query = sa.select(_w.c.instance_id).where(_w.c.kind == "event", _w.c.key == event_type)
    if target_instance_id is not None:
        query = query.where(_w.c.instance_id == target_instance_id)
    return list((conn.execute(query.distinct())).scalars())


def next_event(conn: Connection, instance_id: str, event_type: str,
                     since: float) -> StoredEvent | None:
    """The oldest event of this type, published since ``since``, that this instance
    has not received and that is for everyone or for this instance."""
    params = {"etype": event_type, "since": since, "iid": instance_id}
    row = (conn.execute(_NEXT_EVENT, params)).first()
    if row is None:
        return None
    attributes = decode_json(row.attributes)
    assert isinstance(attributes, dict)
    return StoredEvent(int(row.id), attributes, row.data_bytes)


def next_free_deadline(conn: Connection,
                             workflow_names: Collection[str]) -> float | None:
    """The earliest deadline of a wait this node could claim, or None.

    Resident instances keep their own timers; only free ones (passivated, or of
    a dead node) need the timer service.
    """
    query = (
        sa.select(sa.func.min(_w.c.deadline))
        .select_from(_w.join(_i, _i.c.instance_id == _w.c.instance_id))
        .where(_claimable(workflow_names))
    )
    value = (conn.execute(query)).scalar()
    return None if value is None else float(value)


def claim_instance(instance_id: str, node_id: str,
                   workflow_names: Collection[str]) -> Callable[[Connection], Claimed | None]:
    """Job: take a waiting instance nobody live owns (a passivated one)."""

    def job(conn: Connection) -> Claimed | None:
        params = {"iid": instance_id, "node": node_id, "names": list(workflow_names)}
        row = conn.execute(_CLAIM_ONE, params).first()
        return None if row is None else Claimed(row.instance_id, row.workflow_name, row.epoch)

    return job


def claim_due(node_id: str, workflow_names: Collection[str], now: float,
              limit: int) -> Callable[[Connection], list[Claimed]]:
    """Job: take free instances with a wait whose deadline has passed."""

    def job(conn: Connection) -> list[Claimed]:
        if not workflow_names:
            return []
        due = (
            sa.select(_w.c.instance_id).join(_i, _i.c.instance_id == _w.c.instance_id)
            .where(_w.c.deadline <= now, _claimable(workflow_names))
            .distinct().limit(limit)
        )
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        result = conn.execute(
            sa.update(_i).where(_i.c.instance_id.in_(ids), _free())
            .values(owner_node=node_id, epoch=_i.c.epoch + 1)
            .returning(_i.c.instance_id, _i.c.workflow_name, _i.c.epoch)
        )
        return [Claimed(r.instance_id, r.workflow_name, r.epoch) for r in result]

    return job


@dataclass(frozen=True, slots=True)
class Released:
    """Outcome of giving an instance up: whether it was ours, and whether an event
    for one of its waits is already stored (so it must be woken again)."""

    released: bool
    event_pending: bool


def release_instance(instance_id: str, node_id: str,
                     epoch: int) -> Callable[[Connection], Released]:
    """Job: give a waiting instance up (passivation)."""

    def job(conn: Connection) -> Released:
        result = conn.execute(
            sa.update(_i)
            .where(_i.c.instance_id == instance_id, _i.c.owner_node == node_id,
                   _i.c.epoch == epoch)
            .values(owner_node=None)
        )
        if not result.rowcount:
            return Released(False, False)
        pending = conn.execute(_pending_events_query(instance_id, 1)).first() is not None
        return Released(True, pending)

    return job


def _pending_events_query(instance_id: str | None, limit: int) -> sa.Select[Any]:
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


def waiters_with_pending_events(conn: Connection, limit: int = 1000) -> list[str]:
    """Waiting instances for which an undelivered event exists: lost wake-ups."""
    return list((conn.execute(_pending_events_query(None, limit))).scalars())


def purge_events(older_than: float) -> Callable[[Connection], int]:
    """Job: delete events (and their deliveries) published before ``older_than``."""

    def job(conn: Connection) -> int:
        old = sa.select(_e.c.id).where(_e.c.published_at < older_than)
        conn.execute(sa.delete(_d).where(_d.c.event_id.in_(old)))
        return int(conn.execute(sa.delete(_e).where(_e.c.published_at < older_than)).rowcount)

    return job
