"""Retrying a failed instance from its last good step.

The journal stays append-only: a `WorkflowRetried` entry names the entries that
no longer count (the failure, and the activity failure that caused it), and
every reader of the journal for replay leaves those out. The instance's row goes
back to ``running``, so its partition's owner runs it again: the steps that
completed replay from the journal and the failed one runs anew. The history
keeps everything, the failed attempt included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.codec import encode_entry
from edda.journal.entries import (
    CALL_ENTRY_TYPES,
    ActivityFailed,
    CompensationsStarted,
    WorkflowFailed,
    WorkflowRetried,
    kind_of,
)
from edda.journal.records import journal_records
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.records import Record
    from edda.journal.writes import WriteContext

_i, _j = schema.instances, schema.journal


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What a retry request found: accepted, or why not."""

    accepted: bool
    reason: str

    def __bool__(self) -> bool:
        return self.accepted


class RequestRetry(Write[RetryOutcome], frozen=True):
    """Put a failed instance back to ``running`` unless it is unknown, has not
    failed, or compensated its steps when it failed."""

    instance_id: str
    by: str
    at: float

    def apply(self, conn: Connection, ctx: WriteContext) -> RetryOutcome:
        instance_id = self.instance_id
        row = conn.execute(ctx.dialect.lock(
            sa.select(_i.c.status).where(_i.c.instance_id == instance_id))).first()
        if row is None:
            return RetryOutcome(False, f"no workflow instance {instance_id!r}")
        if row.status != "failed":
            return RetryOutcome(False, f"instance {instance_id!r} is {row.status}; only a "
                                       "failed instance can be retried")
        records = journal_records(conn, instance_id)
        if not records or not isinstance(records[-1].entry, WorkflowFailed):
            return RetryOutcome(False, f"instance {instance_id!r} has no failure to retry "
                                       "in its journal")
        if any(isinstance(r.entry, CompensationsStarted) for r in records):
            return RetryOutcome(False, f"instance {instance_id!r} ran its compensations when "
                                       "it failed, undoing its steps; start a new instance "
                                       "instead")
        retried = WorkflowRetried(retried_by=self.by, retried_at=self.at,
                                  superseded=_superseded(records))
        last = conn.execute(sa.select(sa.func.max(_j.c.seq))
                            .where(_j.c.instance_id == instance_id)).scalar_one()
        conn.execute(sa.insert(_j).values(
            instance_id=instance_id, seq=int(last) + 1, kind=kind_of(retried),
            body=encode_entry(retried).decode(), created_at=ctx.now))
        conn.execute(sa.update(_i).where(_i.c.instance_id == instance_id).values(
            status="running", output=None, owner_node=None, updated_at=ctx.now))
        return RetryOutcome(True, "retried")


def _superseded(records: list[Record]) -> list[int]:
    """The failure, and the activity failure that ended the run if it was the run's
    last durable call (one the workflow caught and went on from stays)."""
    superseded = [records[-1].seq]
    for record in reversed(records[:-1]):
        if isinstance(record.entry, CALL_ENTRY_TYPES):
            if isinstance(record.entry, ActivityFailed):
                superseded.append(record.seq)
            break
    return sorted(superseded)
