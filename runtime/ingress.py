"""Accepting a CloudEvent: store it, start the workflow it names, wake who waits.

`EddaApp.handle_cloudevent` (and the HTTP edge behind it) commits the event
before anything else happens, so a crash afterwards never loses it; an
``@workflow(event_handler=True)`` named like the event's type is created in the
same transaction. Then every instance waiting for the type is woken, and the
app's `on_event` handlers run (in the background, or in turn). A started
instance keeps the event's ``traceparent``/``tracestate`` extensions as its
``_trace_context`` input (see `edda.runtime.workflow`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edda.journal.waits import StoreEvent
from edda.runtime.events import normalize_cloudevent
from edda.runtime.starts import create
from edda.runtime.workflow import TRACE_CONTEXT_KEY

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.app")


async def accept_cloudevent(app: EddaApp, event: Any, *, wait: bool) -> None:
    """See `EddaApp.handle_cloudevent`.

    Raises:
        ValueError: For a malformed event, or data that does not fit the workflow
            it starts (nothing is stored).
    """
    normalized = normalize_cloudevent(event)
    handlers = list(app.event_handlers.get(normalized.type, ()))
    store = StoreEvent(normalized.type, normalized.attributes, normalized.data_bytes,
                       normalized.target_instance_id)
    starts = None if handlers else app.registry.workflow(normalized.type)
    runner = app._runner
    if starts is not None and starts.event_handler:
        data = normalized.attributes["data"]
        payload = dict(data) if isinstance(data, dict) else {}
        # The CloudEvents distributed-tracing extension goes with the input, so the
        # run continues the sender's trace wherever and whenever it resumes.
        tracing = {k: str(v) for k, v in normalized.attributes["extensions"].items()
                   if k in ("traceparent", "tracestate")}
        if "traceparent" in tracing:
            payload.setdefault(TRACE_CONTEXT_KEY, tracing)
        try:
            stored = starts.prepare_input(payload)
        except TypeError as exc:
            raise ValueError(f"CloudEvent {normalized.type!r} cannot start workflow "
                             f"{starts.name!r}: {exc}") from exc
        instance_id, partition, epoch = app._placement().new_id(starts.name)
        await create(app, starts, instance_id, stored, partition, epoch, effects=(store,))
        waiting = await app.stores.waits.event_waiters(normalized.type,
                                                       normalized.target_instance_id)
    else:
        # Who waits is read in the transaction that stores the event: no extra read.
        waiting = await app.stores.waits.store_event(
            normalized.type, normalized.attributes, normalized.data_bytes,
            normalized.target_instance_id)
    for instance_id in waiting:
        await runner.notify(instance_id)
    if handlers:
        received = sdk_event(normalized.attributes, normalized.data_bytes)
    for handler in handlers:
        if wait:
            await _run_handler(handler, received)
        else:
            runner.background.spawn(_run_handler(handler, received))


def sdk_event(attributes: dict[str, Any], data_bytes: bytes | None) -> Any:
    """The event as Edda's handlers receive it, however it arrived: the
    ``cloudevents`` SDK's ``CloudEvent`` (``event["type"]``, ``event.get_data()``)."""
    from cloudevents.v1.http import CloudEvent

    fields = {k: v for k, v in attributes.items()
              if k not in ("data", "extensions") and v is not None}
    fields.update(attributes["extensions"])
    fields["specversion"] = "1.0"
    return CloudEvent(fields, data_bytes if data_bytes is not None else attributes["data"])


async def _run_handler(handler: Callable[[Any], Awaitable[Any]], event: Any) -> None:
    try:
        await handler(event)
    except Exception:
        log.exception("on_event handler %r failed", handler)
