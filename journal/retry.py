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
from edda.journal.channels import Subscribe
from edda.journal.codec import encode_entry
from edda.journal.entries import (
    CALL_ENTRY_TYPES,
    ActivityFailed,
    BodyEnded,
    CompensationsStarted,
    Subscribed,
    Unsubscribed,
    WaitStarted,
    WorkflowFailed,
    WorkflowRetried,
    WorkflowStarted,
    kind_of,
)
from edda.journal.records import journal_records, without_superseded
from edda.journal.waits import AddWait
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.records import Record
    from edda.journal.writes import WriteContext

_i, _j, _s = schema.instances, schema.journal, schema.subscriptions


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
        superseded = _superseded(records)
        kept = [r for r in records if r.seq not in superseded]
        subscriptions = _subscriptions(kept, instance_id)
        for sub in subscriptions:  # checked before anything is written
            taken = conn.execute(sa.select(_s.c.mode).where(
                _s.c.address == sub.address, _s.c.mode != sub.mode,
                _s.c.instance_id != instance_id).limit(1)).scalar()
            if taken is not None:
                return RetryOutcome(False, f"instance {instance_id!r} subscribed to "
                                           f"{sub.channel!r} as {sub.mode}, which others now "
                                           f"use as {taken}; it cannot run again as it was")
        retried = WorkflowRetried(retried_by=self.by, retried_at=self.at,
                                  superseded=superseded)
        # The failure is the journal's newest entry (supersession only hides older ones).
        conn.execute(sa.insert(_j).values(
            instance_id=instance_id, seq=records[-1].seq + 1, kind=kind_of(retried),
            body=encode_entry(retried).decode(), created_at=ctx.now))
        # Its end dropped its waits and subscriptions; the run picks up where it was,
        # so they come back as its journal has them. A cancel that arrived as it
        # failed is over: retrying is a new decision to run it.
        for sub in subscriptions:
            sub.apply(conn, ctx)
        for wait in _open_waits(kept, instance_id):
            wait.apply(conn, ctx)
        conn.execute(sa.update(_i).where(_i.c.instance_id == instance_id).values(
            status="running", output=None, owner_node=None, cancel_request=None,
            updated_at=ctx.now))
        return RetryOutcome(True, "retried")


def _superseded(records: list[Record]) -> list[int]:
    """The failure, and the activity failures that ended the run: the one whose error
    the workflow failed with, and those after the run's last step of progress (calls
    side by side in ``gather`` may all have failed; a wait they left open is no
    progress). If the body ended while other branches still ran activities, the
    `BodyEnded` entry and the failures of those branches (they run again) go too.
    A failure the workflow caught and went on from stays."""
    failure = records[-1].entry
    assert isinstance(failure, WorkflowFailed)
    superseded = {records[-1].seq}
    live = without_superseded(records[:-1])
    for i, record in enumerate(live):
        if isinstance(record.entry, BodyEnded):
            superseded.add(record.seq)
            superseded.update(r.seq for r in live[i + 1:] if isinstance(r.entry, ActivityFailed))
            live = live[:i]
            break
    for record in reversed(live):
        if isinstance(record.entry, ActivityFailed):
            superseded.add(record.seq)
        elif isinstance(record.entry, CALL_ENTRY_TYPES) and not isinstance(record.entry,
                                                                             WaitStarted):
            break
    error = failure.error
    for record in reversed(records):  # the newest with that error: what the run raised
        entry = record.entry
        if isinstance(entry, ActivityFailed) and (entry.error.qualname, entry.error.message) \
                == (error.qualname, error.message):
            superseded.add(record.seq)
            break
    return sorted(superseded)


def _subscriptions(records: list[Record], instance_id: str) -> list[Subscribe]:
    """The subscriptions the run holds at the end of ``records``: carried over from
    a recur, then subscribed and not left."""
    held: dict[str, Subscribe] = {}
    for record in records:
        entry = record.entry
        if isinstance(entry, WorkflowStarted):
            for carried in entry.subscriptions:
                held[carried["channel"]] = Subscribe(
                    instance_id, carried["channel"], carried["address"], carried["mode"],
                    carried["since"])
        elif isinstance(entry, Subscribed):
            held[entry.channel] = Subscribe(instance_id, entry.channel, entry.address,
                                            entry.mode, entry.since)
        elif isinstance(entry, Unsubscribed):
            held.pop(entry.channel, None)
    return list(held.values())


def _open_waits(records: list[Record], instance_id: str) -> list[AddWait]:
    """The waits that began and were not ended by what followed them."""
    started: dict[int, WaitStarted] = {}
    for record in records:
        entry = record.entry
        if isinstance(entry, WaitStarted):
            started[entry.call] = entry
        elif isinstance(entry, CALL_ENTRY_TYPES):
            started.pop(entry.call, None)
    return [AddWait(instance_id, w.position, w.wait_type, w.key, w.deadline)
            for w in started.values()]
