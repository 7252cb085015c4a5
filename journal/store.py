"""The journal and instance store: reading journals, the projection and cancel requests.

Appends go through the node's `GroupCommitWriter` (`Append`); this store reads
what they wrote, and records cancel requests on the projection row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.cancel import CancelRequest, RequestCancel, cancel_request_of, pending_cancels
from edda.journal.records import Record, journal_records, last_record
from edda.journal.retry import RequestRetry, RetryOutcome
from edda.journal.writes import SqlStore

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.cancel import CancelOutcome
    from edda.journal.database import Database
    from edda.journal.dialects import SqlDialect




@dataclass(frozen=True, slots=True)
class InstanceFilter:
    """Filters of `list_instance_rows`; None means no filter."""

    status: str | None = None
    workflow_name: str | None = None
    instance_id: str | None = None
    started_after: float | None = None
    started_before: float | None = None
    input_filters: dict[str, Any] | None = None


_j, _i = schema.journal, schema.instances
_RAW = sa.select(_j.c.seq, _j.c.kind, _j.c.body, _j.c.created_at)
_NEXT_SEQ = sa.select(sa.func.max(_j.c.seq)).where(_j.c.instance_id == sa.bindparam("iid"))
_ROW = sa.select(_i).where(_i.c.instance_id == sa.bindparam("iid"))


def _row(conn: Connection, instance_id: str) -> dict[str, Any] | None:
    row = conn.execute(_ROW, {"iid": instance_id}).first()
    return None if row is None else dict(row._mapping)


def _list_rows(conn: Connection, dialect: SqlDialect, where: InstanceFilter, limit: int,
               after: tuple[float, str] | None) -> list[dict[str, Any]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if where.status is not None:
        clauses.append(_i.c.status == where.status)
    name, iid = where.workflow_name, where.instance_id

    def contains(column: sa.ColumnElement[str], text: str) -> sa.ColumnElement[bool]:
        return sa.func.lower(column).contains(text.lower(), autoescape=True)

    if name is not None and name == iid:
        clauses.append(sa.or_(contains(_i.c.workflow_name, name), contains(_i.c.instance_id, name)))
    else:
        if name is not None:
            clauses.append(contains(_i.c.workflow_name, name))
        if iid is not None:
            clauses.append(contains(_i.c.instance_id, iid))
    if where.started_after is not None:
        clauses.append(_i.c.started_at >= where.started_after)
    if where.started_before is not None:
        clauses.append(_i.c.started_at <= where.started_before)
    for path, value in (where.input_filters or {}).items():
        clauses.append(dialect.json_equals(_i.c.input, path, value))
    if after is not None:
        started, last_id = after
        clauses.append(sa.or_(_i.c.started_at < started,
                              sa.and_(_i.c.started_at == started, _i.c.instance_id < last_id)))
    query = (sa.select(_i).where(*clauses)
             .order_by(_i.c.started_at.desc(), _i.c.instance_id.desc()).limit(limit + 1))
    return [dict(row._mapping) for row in conn.execute(query)]


class SqlJournalStore(SqlStore):
    """`JournalStore` on SQLite or PostgreSQL.

    Reads the runtime needs to go on (replaying, re-activating) wait out a
    database that is unavailable; reads for callers of the query API do not.
    """

    async def records(self, instance_id: str) -> list[Record]:
        """Every entry of an instance's journal, in seq order."""
        return await self._db.query(lambda conn: journal_records(conn, instance_id),
                                    patient=True)

    async def cancel_request(self, instance_id: str) -> CancelRequest | None:
        """The cancel requested for an instance, if any."""
        return await self._db.query(lambda conn: cancel_request_of(conn, instance_id),
                                    patient=True)

    async def activation(self, instance_id: str) -> tuple[list[Record], CancelRequest | None]:
        """What re-activating an instance reads: its journal and any cancel request."""
        def reads(conn: Connection) -> tuple[list[Record], CancelRequest | None]:
            return journal_records(conn, instance_id), cancel_request_of(conn, instance_id)

        return await self._db.query(reads, patient=True)

    async def last_record(self, instance_id: str) -> Record | None:
        return await self._db.query(lambda conn: last_record(conn, instance_id), patient=True)

    async def next_seq(self, instance_id: str) -> int:
        """The seq the next entry of an instance takes (without decoding any entry)."""
        last = await self._db.query(
            lambda conn: conn.execute(_NEXT_SEQ, {"iid": instance_id}).scalar(), patient=True)
        return 0 if last is None else int(last) + 1

    async def row(self, instance_id: str, *, patient: bool = True) -> dict[str, Any] | None:
        """The projection row of an instance, or None."""
        return await self._db.query(lambda conn: _row(conn, instance_id), patient=patient)

    async def raw_records(self, instance_id: str) -> list[dict[str, Any]]:
        """The stored rows of a journal (kind and JSON body), in seq order."""
        query = _RAW.where(_j.c.instance_id == instance_id).order_by(_j.c.seq)
        return await self._db.query(
            lambda conn: [dict(row._mapping) for row in conn.execute(query)])

    async def list_rows(self, where: InstanceFilter, *, limit: int,
                        after: tuple[float, str] | None) -> list[dict[str, Any]]:
        """Instances newest first (``started_at DESC, instance_id DESC``), limit+1 rows.

        ``after`` is the (started_at, instance_id) of the last row of the previous page.
        """
        dialect = self._db.sql
        return await self._db.query(lambda conn: _list_rows(conn, dialect, where, limit, after))

    async def request_cancel(self, instance_id: str, by: str, at: float) -> CancelOutcome:
        return await self._write(RequestCancel(instance_id, by, at))

    async def request_retry(self, instance_id: str, by: str, at: float) -> RetryOutcome:
        return await self._write(RequestRetry(instance_id, by, at))

    async def pending_cancels(self, node_id: str) -> list[tuple[str, CancelRequest]]:
        return await self._db.query(lambda conn: pending_cancels(conn, node_id), patient=True)


async def read_journal(db: Database, instance_id: str) -> list[Record]:
    """Every entry of an instance's journal, in seq order (for tools and tests)."""
    return await SqlJournalStore(db, None).records(instance_id)
