"""Reading journals and the instance projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from edda.journal import schema
from edda.journal.codec import decode_entry

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.database import Database
    from edda.journal.entries import Entry


@dataclass(frozen=True, slots=True)
class Record:
    """One stored journal entry."""

    seq: int
    entry: Entry
    created_at: float


def journal_records(conn: Connection, instance_id: str) -> list[Record]:
    """Every entry of an instance's journal, in seq order (inside a query)."""
    j = schema.journal
    query = (
        sa.select(j.c.seq, j.c.body, j.c.created_at)
        .where(j.c.instance_id == instance_id)
        .order_by(j.c.seq)
    )
    return [Record(row.seq, decode_entry(row.body), row.created_at)
            for row in conn.execute(query)]


def last_record(conn: Connection, instance_id: str) -> Record | None:
    """The newest entry of an instance's journal (inside a query), or None."""
    j = schema.journal
    query = (
        sa.select(j.c.seq, j.c.body, j.c.created_at)
        .where(j.c.instance_id == instance_id)
        .order_by(j.c.seq.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else Record(row.seq, decode_entry(row.body), row.created_at)


async def read_journal(db: Database, instance_id: str) -> list[Record]:
    """Every entry of an instance's journal, in seq order."""
    return await db.query(lambda conn: journal_records(conn, instance_id))


async def next_seq(db: Database, instance_id: str) -> int:
    """The seq the next entry of an instance takes (without decoding any entry)."""
    j = schema.journal
    query = sa.select(sa.func.max(j.c.seq)).where(j.c.instance_id == instance_id)
    last = await db.query(lambda conn: conn.execute(query).scalar())
    return 0 if last is None else int(last) + 1


async def read_raw_journal(db: Database, instance_id: str) -> list[dict[str, Any]]:
    """The stored rows of a journal (kind and JSON body), in seq order."""
    j = schema.journal
    query = (
        sa.select(j.c.seq, j.c.kind, j.c.body, j.c.created_at)
        .where(j.c.instance_id == instance_id)
        .order_by(j.c.seq)
    )
    return await db.query(lambda conn: [dict(row._mapping) for row in conn.execute(query)])


async def get_instance_row(db: Database, instance_id: str) -> dict[str, Any] | None:
    """The projection row of an instance, or None."""
    query = sa.select(schema.instances).where(schema.instances.c.instance_id == instance_id)
    row = await db.query(lambda conn: conn.execute(query).first())
    return None if row is None else dict(row._mapping)


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    """Filters of `list_instance_rows`; None means no filter."""

    status: str | None = None
    workflow_name: str | None = None
    instance_id: str | None = None
    started_after: float | None = None
    started_before: float | None = None
    input_filters: dict[str, Any] | None = None


def _json_path_clause(db: Database, path: str, value: Any) -> sa.ColumnElement[bool]:
    column = schema.instances.c.input
    keys = path.split(".")
    if db.dialect == "sqlite":
        extracted: sa.ColumnElement[Any] = sa.func.json_extract(column, "$." + path)
        if value is None:
            return extracted.is_(None)
        if isinstance(value, bool):
            return extracted == int(value)
        result: sa.ColumnElement[bool] = extracted == value
        return result
    path_array = sa.cast(sa.literal("{" + ",".join(keys) + "}"), ARRAY(sa.Text))
    text: sa.ColumnElement[Any] = sa.cast(column, sa.JSON).op("#>>")(path_array)
    if value is None:
        return text.is_(None)
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    return text == str(value)


async def list_instance_rows(
    db: Database, where: InstanceFilter, *, limit: int, after: tuple[float, str] | None
) -> list[dict[str, Any]]:
    """Instances newest first (``started_at DESC, instance_id DESC``), limit+1 rows.

    ``after`` is the (started_at, instance_id) of the last row of the previous page.
    """
    inst = schema.instances
    clauses: list[sa.ColumnElement[bool]] = []
    if where.status is not None:
        clauses.append(inst.c.status == where.status)
    name, iid = where.workflow_name, where.instance_id
    if name is not None and name == iid:
        clauses.append(
            sa.or_(
                sa.func.lower(inst.c.workflow_name).contains(name.lower(), autoescape=True),
                sa.func.lower(inst.c.instance_id).contains(name.lower(), autoescape=True),
            )
        )
    else:
        if name is not None:
            clauses.append(
                sa.func.lower(inst.c.workflow_name).contains(name.lower(), autoescape=True)
            )
        if iid is not None:
            clauses.append(sa.func.lower(inst.c.instance_id).contains(iid.lower(), autoescape=True))
    if where.started_after is not None:
        clauses.append(inst.c.started_at >= where.started_after)
    if where.started_before is not None:
        clauses.append(inst.c.started_at <= where.started_before)
    for path, value in (where.input_filters or {}).items():
        clauses.append(_json_path_clause(db, path, value))
    if after is not None:
        started, last_id = after
        clauses.append(
            sa.or_(
                inst.c.started_at < started,
                sa.and_(inst.c.started_at == started, inst.c.instance_id < last_id),
            )
        )
    query = (
        sa.select(inst)
        .where(*clauses)
        .order_by(inst.c.started_at.desc(), inst.c.instance_id.desc())
        .limit(limit + 1)
    )
    return await db.query(lambda conn: [dict(row._mapping) for row in conn.execute(query)])
