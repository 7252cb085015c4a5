"""An instance's journal as stored records, read the way replay reads it.

A `WorkflowRetried` entry supersedes earlier entries (a failure that was
retried); `journal_records` leaves those out, so every replay, activation and
check of the journal sees the instance as it now runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.codec import decode_entry
from edda.journal.entries import WorkflowRetried

if TYPE_CHECKING:
    from sqlalchemy import Connection

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
    return without_superseded([Record(row.seq, decode_entry(row.body), row.created_at)
                               for row in conn.execute(query)])


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


def without_superseded(records: list[Record]) -> list[Record]:
    """The journal as replay reads it: what retries superseded left out."""
    dropped = {seq for r in records if isinstance(r.entry, WorkflowRetried)
               for seq in r.entry.superseded}
    return [r for r in records if r.seq not in dropped] if dropped else records
