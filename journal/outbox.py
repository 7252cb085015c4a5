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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.writes import SqlStore, Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import WriteContext

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
    #: Its CloudEvent extension attributes, as JSON (None: it has none).
    extensions: str | None = None


class InsertOutbox(Write[None], frozen=True):
    """Effect: store new pending outbox rows (built by the runtime)."""

    rows: list[dict[str, Any]]

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        if self.rows:
            conn.execute(_INSERT, self.rows)


class ClaimOutbox(Write[list[OutboxRow]], frozen=True):
    """Claim up to ``limit`` due rows, oldest due first, counting an attempt.

    On PostgreSQL rows another relayer is claiming are skipped, not waited for.
    """

    relayer_id: str
    limit: int
    claim_seconds: float

    def apply(self, conn: Connection, ctx: WriteContext) -> list[OutboxRow]:
        now = ctx.now
        query = (sa.select(_out.c.id).where(_DUE).order_by(_out.c.next_attempt_at, _out.c.id)
                 .limit(self.limit))
        ids = list(conn.execute(ctx.dialect.skip_locked(query), {"now": now}).scalars())
        if not ids:
            return []
        conn.execute(
            sa.update(_out).where(_out.c.id.in_(ids)).values(
                status="processing", claimed_by=self.relayer_id,
                claimed_until=now + self.claim_seconds, attempts=_out.c.attempts + 1)
        )
        rows = conn.execute(
            sa.select(_out.c.id, _out.c.event_id, _out.c.event_type, _out.c.event_source,
                      _out.c.data, _out.c.data_bytes, _out.c.content_type, _out.c.attempts,
                      _out.c.created_at, _out.c.extensions)
            .where(_out.c.id.in_(ids)).order_by(_out.c.id)
        )
        return [OutboxRow(**row._mapping) for row in rows]


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of one claimed row: its new status and, to retry, when."""

    id: int
    status: str
    error: str | None = None
    next_attempt_at: float | None = None


class SettleOutbox(Write[int], frozen=True):
    """Record the outcome of each row this relayer still holds; returns how many
    rows it changed (rows claimed again by another relayer are left alone)."""

    relayer_id: str
    outcomes: list[Settled]

    def apply(self, conn: Connection, ctx: WriteContext) -> int:
        changed = 0
        for outcome in self.outcomes:
            values: dict[str, Any] = {"status": outcome.status, "claimed_by": None,
                                      "claimed_until": None, "last_error": outcome.error}
            if outcome.status == "published":
                values["published_at"] = ctx.now
            if outcome.next_attempt_at is not None:
                values["next_attempt_at"] = outcome.next_attempt_at
            result = conn.execute(
                sa.update(_out)
                .where(_out.c.id == outcome.id, _out.c.claimed_by == self.relayer_id,
                       _out.c.status == "processing")
                .values(**values)
            )
            changed += result.rowcount
        return changed


class DeletePublished(Write[int], frozen=True):
    """Delete rows published before ``older_than`` (UNIX time)."""

    older_than: float

    def apply(self, conn: Connection, ctx: WriteContext) -> int:
        result = conn.execute(
            sa.delete(_out).where(_out.c.status == "published",
                                  _out.c.published_at < self.older_than))
        return int(result.rowcount)


def _next_due(conn: Connection) -> float | None:
    pending = conn.execute(
        sa.select(sa.func.min(_out.c.next_attempt_at)).where(_out.c.status == "pending")
    ).scalar()
    claimed = conn.execute(
        sa.select(sa.func.min(_out.c.claimed_until)).where(_out.c.status == "processing")
    ).scalar()
    times = [t for t in (pending, claimed) if t is not None]
    return min(times) if times else None


class SqlOutboxStore(SqlStore):
    """`OutboxStore` on SQLite or PostgreSQL: relayers claim, send and settle rows."""

    async def claim(self, relayer_id: str, limit: int, claim_seconds: float
                    ) -> list[OutboxRow]:
        return await self._write(ClaimOutbox(relayer_id, limit, claim_seconds))

    async def settle(self, relayer_id: str, outcomes: list[Settled]) -> int:
        return await self._write(SettleOutbox(relayer_id, outcomes))

    async def delete_published(self, older_than: float) -> int:
        return await self._write(DeletePublished(older_than))

    async def next_due(self) -> float | None:
        return await self._db.query(_next_due, patient=True)


def outbox_rows(conn: Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    """Outbox rows as dicts, oldest first (for tools and tests)."""
    query = sa.select(_out).order_by(_out.c.id)
    if status is not None:
        query = query.where(_out.c.status == status)
    return [dict(row._mapping) for row in conn.execute(query)]
