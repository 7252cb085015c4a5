"""The read API of an app: instances and histories in Edda's shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edda.journal.codec import decode_json
from edda.journal.store import InstanceFilter
from edda.runtime.limits import check_key, check_text

if TYPE_CHECKING:
    from edda.journal.stores import JournalStore

STATUSES = (
    "running", "completed", "failed", "waiting_for_event", "waiting_for_timer",
    "waiting_for_message", "compensating", "cancelled", "recurred",
)
_JSON_PATH = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.]*$")
_EVENT_TYPES = {
    "workflow_started": "WorkflowStarted",
    "activity_completed": "ActivityCompleted",
    "activity_failed": "ActivityFailed",
    "workflow_completed": "WorkflowCompleted",
    "workflow_failed": "WorkflowFailed",
    "wait_started": "WaitStarted",
    "timer_fired": "TimerExpired",
    "event_received": "EventReceived",
    "wait_timed_out": "MessageTimeout",
    "subscribed": "Subscribed",
    "unsubscribed": "Unsubscribed",
    "message_published": "MessagePublished",
    "message_received": "ChannelMessageReceived",
    "workflow_recurred": "WorkflowRecurred",
    "workflow_retried": "WorkflowRetried",
    "body_ended": "BodyEnded",
    "compensation_registered": "CompensationRegistered",
    "compensations_started": "CompensationsStarted",
    "workflow_cancelling": "WorkflowCancelling",
    "workflow_cancelled": "WorkflowCancelled",
    "transaction_committed": "TransactionCommitted",
}


def iso(ts: float | None) -> str | None:
    """An aware UTC ISO-8601 string for a stored UNIX time."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def instance_dict(row: dict[str, Any]) -> dict[str, Any]:
    """An instance row as `EddaApp.get_instance` returns it."""
    return {
        "instance_id": row["instance_id"],
        "workflow_name": row["workflow_name"],
        "source_hash": row["source_hash"],
        "owner_service": row["owner_service"],
        "status": row["status"],
        "current_activity_id": row["current_activity_id"],
        "started_at": iso(row["started_at"]),
        "updated_at": iso(row["updated_at"]),
        "input_data": decode_json(row["input"]),
        "source_code": None,
        "output_data": decode_json(row["output"]),
        "locked_by": row["owner_node"],
        "locked_at": None,
        "lock_timeout_seconds": None,
        "continued_from": row["continued_from"],
        "epoch": row["epoch"],
    }


async def get_instance(store: JournalStore, instance_id: str) -> dict[str, Any] | None:
    """One instance, or None if there is none with that id."""
    row = await store.row(instance_id, patient=False)
    return None if row is None else instance_dict(row)


def _history_item(instance_id: str, row: dict[str, Any]) -> dict[str, Any]:
    body = decode_json(row["body"])
    assert isinstance(body, dict)
    kind = body.pop("kind")
    activity_id = body.get("position", kind)
    data: dict[str, Any]
    if kind == "activity_completed":
        data = {
            "activity_name": body["activity_name"],
            "result": body.get("result"),
            "input": {"args": body.get("args", []), "kwargs": body.get("kwargs", {})},
            "attempts": body.get("attempts", 1),
        }
        data.update(_timing(body, row["created_at"], kind))
    elif kind in ("activity_failed", "workflow_failed"):
        error = body["error"]
        data = {
            "error_type": error["qualname"],
            "error_message": error["message"],
            "stack_trace": error.get("traceback", ""),
        }
        if kind == "activity_failed":
            data["activity_name"] = body["activity_name"]
            data["input"] = {"args": body.get("args", []), "kwargs": body.get("kwargs", {})}
            data["attempts"] = body.get("attempts", 1)
            data.update(_timing(body, row["created_at"], kind))
    elif kind == "compensation_done":
        activity_id = f"compensation:{body['registered_at']}"
        data = {"activity_name": body["name"], "compensation_id": body["registered_at"],
                "attempts": body.get("attempts", 1)}
        error = body.get("error")
        if error is not None:
            data.update(error_type=error["qualname"], error_message=error["message"])
        kind = "CompensationFailed" if error is not None else "CompensationExecuted"
    elif kind == "message_received":
        data = {"id": body["message_id"], "channel": body["channel"],
                "data": {"_binary": True} if body.get("data_bytes") else body.get("data"),
                "metadata": body.get("metadata", {}), "published_at": iso(body["published_at"])}
    elif kind == "event_received":
        event = body["event"]
        data = {**event, "event_row": body["event_id"]}
        if body.get("data_bytes") is not None:
            data["data"] = {"_binary": True}
    else:
        data = body
    return {
        "id": row["seq"],
        "instance_id": instance_id,
        "activity_id": activity_id,
        "event_type": _EVENT_TYPES.get(kind, kind),
        "event_data": data,
        "created_at": iso(row["created_at"]),
    }


def _timing(body: dict[str, Any], ended: float, kind: str) -> dict[str, Any]:
    """When an activity call began and how long it took, and Edda's ``retry_metadata``
    when it took more than one attempt."""
    started = body.get("started_at")
    timing: dict[str, Any] = {}
    duration_ms = None
    if started is not None:
        duration_ms = max(0, round((ended - started) * 1000))
        timing.update(started_at=iso(started), duration_ms=duration_ms)
    errors = body.get("failed_attempts", [])
    if errors or body.get("attempts", 1) > 1:
        last = errors[-1] if errors else None
        timing["retry_metadata"] = {
            "total_attempts": body.get("attempts", 1),
            "total_duration_ms": duration_ms or 0,
            "exhausted": kind == "activity_failed"
                         and body["error"]["qualname"] == "RetryExhaustedError",
            "errors": errors,
            "last_error": None if last is None else {"error_type": last["error_type"],
                                                     "message": last["message"]},
        }
    return timing


async def get_history(store: JournalStore, instance_id: str) -> list[dict[str, Any]]:
    """The journal of an instance in journal order, in Edda's history shape."""
    return [_history_item(instance_id, row) for row in await store.raw_records(instance_id)]


def _epoch(value: datetime | None, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (for example datetime.now(UTC))")
    return value.timestamp()


def _parse_token(token: str) -> tuple[float, str]:
    started, sep, instance_id = token.partition("||")
    try:
        if not sep or not instance_id:
            raise ValueError
        return float(started), check_key(instance_id, "page_token")
    except ValueError:
        raise ValueError(f"page_token {token!r} is not a token returned by find_instances") from None


async def find_instances(
    store: JournalStore,
    *,
    input_filters: dict[str, Any] | None = None,
    status: str | None = None,
    workflow_name: str | None = None,
    instance_id: str | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    limit: int = 50,
    page_token: str | None = None,
) -> dict[str, Any]:
    """A page of instances, newest first; see `EddaApp.find_instances`."""
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValueError(f"limit must be an integer from 1 to 1000, got {limit!r}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if workflow_name is not None:
        check_key(workflow_name, "workflow_name")
    if instance_id is not None:
        check_key(instance_id, "instance_id")
    for path, value in (input_filters or {}).items():
        if not _JSON_PATH.match(path):
            raise ValueError(f"Invalid JSON path: {path!r}")
        if value is not None and not isinstance(value, bool | int | float | str):
            raise ValueError(f"input filter {path!r} must be None, bool, number or str")
        if isinstance(value, str):
            check_text(value, f"input filter {path!r}")
    where = InstanceFilter(
        status=status, workflow_name=workflow_name, instance_id=instance_id,
        started_after=_epoch(started_after, "started_after"),
        started_before=_epoch(started_before, "started_before"),
        input_filters=input_filters,
    )
    after = None if page_token is None else _parse_token(page_token)
    rows = await store.list_rows(where, limit=limit, after=after)
    has_more = len(rows) > limit
    rows = rows[:limit]
    token = f"{rows[-1]['started_at']!r}||{rows[-1]['instance_id']}" if has_more else None
    return {
        "instances": [instance_dict(r) for r in rows],
        "next_page_token": token,
        "has_more": has_more,
    }
