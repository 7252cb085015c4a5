"""The transactional outbox table: rows written with a journal entry, taken by relayers.

A row is written in the transaction of the activity (or body transaction) that
sent it, so it exists exactly when that step is journaled. A relayer *claims*
due rows (``processing``, with a deadline), publishes them, and then settles
each one. Every settling statement names the claimant, so a relayer that was
presumed dead and whose rows were taken again cannot overwrite what the new
claimant did. A claim whose deadline passed is due again: that is how the rows
of a crashed relayer are recovered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

_out = schema.outbox
_INSERT = sa.insert(_out)
_DUE = sa.or_(
    sa.and_(_out.c.status == "pending", _out.c.next_attempt_at <= sa.bindparam("now")),
    sa.and_(_out.c.status == "processing", _out.c.claimed_until < sa.bindparam("now")),
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An event to publish, as a relayer claimed it."""

    id: int
    event_id: str
    event_type: str
    event_source: str
    data: str | None
    data_bytes: bytes | None
    content_type: str
    attempts: int
    created_at: float


def insert_rows(rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    """A write that stores new pending outbox rows (built by the runtime)."""

    def insert(conn: Connection) -> None:
        if rows:
            conn.execute(_INSERT, rows)

    return insert


def claim_due(relayer_id: str, limit: int, claim_seconds: float, *, dialect: str
              ) -> Callable[[Connection], list[OutboxRow]]:
    """A write that claims up to ``limit`` due rows, oldest due first, counting an attempt.

    On PostgreSQL rows another relayer is claiming are skipped, not waited for.
    """

    def claim(conn: Connection) -> list[OutboxRow]:
        now = time.time()
        query = (sa.select(_out.c.id).where(_DUE).order_by(_out.c.next_attempt_at, _out.c.id)
                 .limit(limit))
        if dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query, {"now": now}).scalars())
        if not ids:
            return []
        conn.execute(
            sa.update(_out).where(_out.c.id.in_(ids)).values(
                status="processing", claimed_by=relayer_id, claimed_until=now + claim_seconds,
                attempts=_out.c.attempts + 1)
        )
        rows = conn.execute(
            sa.select(_out.c.id, _out.c.event_id, _out.c.event_type, _out.c.event_source,
                      _out.c.data, _out.c.data_bytes, _out.c.content_type, _out.c.attempts,
                      _out.c.created_at)
            .where(_out.c.id.in_(ids)).order_by(_out.c.id)
        )
        return [OutboxRow(*row) for row in rows]

    return claim


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one claimed row: its new status and, to retry, when."""

    id: int
    status: str
    error: str | None = None
    next_attempt_at: float | None = None


def settle(relayer_id: str, outcomes: list[Settled]) -> Callable[[Connection], int]:
    """A write that records the outcome of each row this relayer still holds.

    Returns:
        How many rows it changed (rows claimed again by another relayer are left).
    """

    def write(conn: Connection) -> int:
        now = time.time()
        changed = 0
        for outcome in outcomes:
            values: dict[str, Any] = {"status": outcome.status, "claimed_by": None,
                                      "claimed_until": None, "last_error": outcome.error}
            if outcome.status == "published":
                values["published_at"] = now
            if outcome.next_attempt_at is not None:
                values["next_attempt_at"] = outcome.next_attempt_at
            result = conn.execute(
                sa.update(_out)
                .where(_out.c.id == outcome.id, _out.c.claimed_by == relayer_id,
                       _out.c.status == "processing")
                .values(**values)
            )
            changed += result.rowcount
        return changed

    return write


def next_due(conn: Connection) -> float | None:
    """When the earliest pending row (or expiring claim) becomes due, or None."""
    pending = conn.execute(
        sa.select(sa.func.min(_out.c.next_attempt_at)).where(_out.c.status == "pending")
    ).scalar()
    claimed = conn.execute(
        sa.select(sa.func.min(_out.c.claimed_until)).where(_out.c.status == "processing")
    ).scalar()
    times = [t for t in (pending, claimed) if t is not None]
    return min(times) if times else None


def delete_published(older_than: float) -> Callable[[Connection], int]:
    """A write that deletes rows published before ``older_than`` (UNIX time)."""

    def delete(conn: Connection) -> int:
        result = conn.execute(
            sa.delete(_out).where(_out.c.status == "published", _out.c.published_at < older_than)
        )
        return result.rowcount

    return delete


def outbox_rows(conn: Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    """Outbox rows as dicts, oldest first (for tools and tests)."""
    query = sa.select(_out).order_by(_out.c.id)
    if status is not None:
        query = query.where(_out.c.status == status)
    return [dict(row._mapping) for row in conn.execute(query)]
