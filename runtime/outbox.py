"""`send_event_transactional`: an event that is sent if, and only if, its step commits."""

from __future__ import annotations

from typing import Any

from edda.journal.codec import encode_json
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.events import check_event_type, check_extensions, outgoing_extensions
from edda.runtime.serialization import to_jsonable
from edda.runtime.transactions import current_transaction, outbox_row


async def send_event_transactional(
    ctx: WorkflowContext,
    event_type: str,
    event_source: str,
    event_data: dict[str, Any] | Any,
    content_type: str = "application/json",
    *,
    extensions: dict[str, Any] | None = None,
) -> str:
    """Queue a CloudEvent in the outbox, in the current step's transaction.

    Call it inside an activity (or an ``async with ctx.transaction()`` block in
    the workflow body). The event is stored atomically with the step's journal
    entry and ``ctx.session`` work: if the attempt fails or rolls back, the event
    is never sent; once the step commits, the app's `OutboxRelayer` delivers it
    at least once, with its ``id`` set to the returned event id on every attempt
    (receivers deduplicate by it).

    Args:
        ctx: The workflow's context.
        event_type: The CloudEvent ``type``.
        event_source: The CloudEvent ``source``.
        event_data: A JSON-compatible value or a pydantic model (sent as JSON),
            or ``bytes`` (sent as they are, with ``content_type``).
        content_type: The event's ``datacontenttype``.
        extensions: CloudEvent extension attributes to send with it (beyond
            Edda), on top of those the app's hooks add (see `TracingHooks`:
            the OpenTelemetry hooks add the current ``traceparent``).

    Returns:
        The event id (a uuid4 string).

    Raises:
        RuntimeError: Outside an activity or transaction block (the event could
            not be atomic with anything, and a replay would send it again).
        TypeError, ValueError: For an empty type or source, unstorable data, or
            an extension that is not a string, number or boolean, or is named
            like a core attribute.
    """
    require_context(ctx, "send_event_transactional")
    check_event_type(event_type)
    if not isinstance(event_source, str) or not event_source.strip():
        raise ValueError("event_source must be a non-empty string")
    if not isinstance(content_type, str) or not content_type.strip():
        raise ValueError("content_type must be a non-empty string such as 'application/json'")
    txn = current_transaction(ctx)
    if txn is None:
        raise RuntimeError(
            "send_event_transactional() must be called inside an @activity or inside "
            "'async with ctx.transaction()' in the workflow body, so that the event commits "
            "with that step; to send at once without a transaction, use send_event()")
    data: str | None = None
    data_bytes: bytes | None = None
    if isinstance(event_data, bytes | bytearray):
        data_bytes = bytes(event_data)
    else:
        data = encode_json(to_jsonable(event_data, what=f"event_data of {event_type!r}"))
    extra = check_extensions(outgoing_extensions(ctx.hooks, ctx.instance_id, extensions))
    return txn.add_event(outbox_row(ctx.instance_id, event_type, event_source, data, data_bytes,
                                    content_type, ctx._run.clock.now(),
                                    encode_json(extra) if extra else None))
