"""Cancel requests: the instance's cancel mailbox on its projection row.

A cancel is committed here first, so it is never lost, whoever owns the
instance and whether or not it is resident. The owning actor then journals
`WorkflowCancelling`, compensates and ends with `WorkflowCancelled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.codec import decode_json, encode_json
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import WriteContext

_i = schema.instances
#: Statuses from which an instance can be cancelled (as in Edda).
CANCELLABLE = ("running", *schema.WAITING_STATUSES)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Who asked for the cancel, when (UNIX seconds), and the status it found."""

    by: str
    at: float
    previous_status: str

    def encode(self) -> str:
        return encode_json({"by": self.by, "at": self.at, "previous_status": self.previous_status})

    @classmethod
    def decode(cls, text: str | None) -> CancelRequest | None:
        if text is None:
            return None
        data = decode_json(text)
        assert isinstance(data, dict)
        return cls(str(data["by"]), float(data["at"]), str(data["previous_status"]))


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What a cancel request found: accepted, or why not."""

    accepted: bool
    reason: str
    owner_node: str | None = None
    request: CancelRequest | None = None


class RequestCancel(Write[CancelOutcome], frozen=True):
    """Record a cancel request unless the instance is unknown, finished, compensating
    after a failure, or already asked to cancel."""

    instance_id: str
    by: str
    at: float

    def apply(self, conn: Connection, ctx: WriteContext) -> CancelOutcome:
        instance_id = self.instance_id
        query = sa.select(_i.c.status, _i.c.owner_node, _i.c.cancel_request).where(
            _i.c.instance_id == instance_id)
        row = conn.execute(ctx.dialect.lock(query)).first()
        if row is None:
            return CancelOutcome(False, f"no workflow instance {instance_id!r}")
        earlier = CancelRequest.decode(row.cancel_request)
        if row.status not in CANCELLABLE and not (earlier and row.status == "compensating"):
            why = ("it is compensating after a failure" if row.status == "compensating"
                   else f"it has already ended ({row.status})")
            return CancelOutcome(False, f"instance {instance_id!r} cannot be cancelled: {why}",
                                 row.owner_node)
        if earlier is not None:
            return CancelOutcome(False, f"a cancel was already requested by {earlier.by!r}",
                                 row.owner_node, earlier)
        request = CancelRequest(self.by, self.at, row.status)
        # From the moment the cancel is accepted the instance is on its way out, never
        # again running or waiting: "compensating" until its actor ends it "cancelled"
        # (at once when there is nothing to undo). Unfinished, so a sweep runs it.
        conn.execute(sa.update(_i).where(_i.c.instance_id == instance_id)
                     .values(cancel_request=request.encode(), status="compensating",
                             updated_at=ctx.now))
        return CancelOutcome(True, "cancel requested", row.owner_node, request)


def cancel_request_of(conn: Connection, instance_id: str) -> CancelRequest | None:
    """The cancel requested for an instance, if any."""
    text = conn.execute(sa.select(_i.c.cancel_request)
                        .where(_i.c.instance_id == instance_id)).scalar()
    return CancelRequest.decode(text)


def pending_cancels(conn: Connection, node_id: str, limit: int = 1000
                    ) -> list[tuple[str, CancelRequest]]:
    """Instances this node owns (or nobody does) that were asked to cancel and have
    not ended, with their requests."""
    query = (sa.select(_i.c.instance_id, _i.c.cancel_request)
             .where(sa.or_(_i.c.owner_node == node_id, _i.c.owner_node.is_(None)),
                    _i.c.cancel_request.is_not(None),
                    _i.c.status.in_((*CANCELLABLE, "compensating")))
             .limit(limit))
    found = []
    for row in conn.execute(query):
        request = CancelRequest.decode(row.cancel_request)
        assert request is not None
        found.append((row.instance_id, request))
    return found


def cancel_output(request: CancelRequest, failed: list[str]) -> dict[str, Any]:
    """The ``output_data`` of a cancelled instance (Edda's shape, plus what failed)."""
    output: dict[str, Any] = {
        "cancelled_by": request.by,
        "cancelled_at": datetime.fromtimestamp(request.at, UTC).isoformat(),
        "previous_status": request.previous_status,
    }
    if failed:
        output["failed_compensations"] = failed
    return output
