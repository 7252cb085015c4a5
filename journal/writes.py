"""The writer's vocabulary: typed writes, applied by the stores inside a transaction.

Every change the runtime makes to the database is one of these values: an
effect that rides with a journal entry (`Append.effects`), or a command of its
own (`GroupCommitWriter.submit`). A write is data, so when the writer has to try a
batch again after the database failed, it applies the same values again: its
result reaches the caller only from the attempt that committed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.database import Database
    from edda.journal.dialects import SqlDialect
    from edda.journal.group_commit import GroupCommitWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteContext:
    """What a write may use besides its connection: the dialect and the batch's time."""

    dialect: SqlDialect
    #: UNIX seconds, the same for every write of the batch (the node's clock).
    now: float
    node_id: str


class Write(msgspec.Struct, Generic[T], frozen=True):
    """A change to the database; ``apply`` runs it inside the writer's transaction."""

    def apply(self, conn: Connection, ctx: WriteContext) -> T:
        raise NotImplementedError


Effect = Write[Any]


async def write_alone(db: Database, op: Write[T], *, node_id: str = "") -> T:
    """Apply one write in a transaction of its own, outside any node's writer."""
    (result,) = await apply_all(db, [op], node_id=node_id)
    return result


async def apply_all(db: Database, ops: list[Write[T]], *, node_id: str = "") -> list[T]:
    """Apply writes in one transaction of their own (tools, tests, bulk loads)."""
    dialect = db.sql

    def transaction(conn: Connection) -> list[T]:
        ctx = WriteContext(dialect, time.time(), node_id)
        return [op.apply(conn, ctx) for op in ops]

    return await db.write(transaction)


def mark_seen(future: asyncio.Future[Any]) -> None:
    """A done-callback for a write's future whose caller may stop waiting: its error
    (the caller learns it another way, or no longer cares) is marked retrieved, so
    asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


class SqlStore:
    """Base of the SQL stores: reads on the database, writes through the node's writer
    (or, without one, each in a transaction of its own)."""

    def __init__(self, db: Database, writer: GroupCommitWriter | None) -> None:
        self._db = db
        self._writer = writer

    async def _write(self, op: Write[T]) -> T:
        if self._writer is None:
            return await write_alone(self._db, op)
        # Shielded: a caller that gives up waiting does not cancel a write others follow;
        # the error of a write nobody waits for any more is not reported as unretrieved.
        future = self._writer.submit(op)
        future.add_done_callback(mark_seen)
        return await asyncio.shield(future)
