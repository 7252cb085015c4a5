"""CloudEvents in workflows: `wait_event`, `send_event`, `ReceivedEvent`.

An accepted event is stored before anything else happens, then every instance
waiting for its type is woken. A workflow receives each event of its type that
was published after the workflow started, once, whenever it reaches
`wait_event` (Edda misses events published before the first wait). An event
with the ``eddainstanceid`` extension is for that instance only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from edda.journal.entries import EventReceived
from edda.journal.waits import MarkDelivered
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.hooks import ask, fire
from edda.runtime.limits import check_key
from edda.runtime.registry import current_app, ready_app
from edda.runtime.serialization import restore, to_jsonable
from edda.runtime.timers import check_seconds
from edda.runtime.waits import Delivery, durable_wait

M = TypeVar("M")
log = logging.getLogger("edda.events")

_CORE = ("type", "source", "id", "time", "datacontenttype", "subject")
_NOT_EXTENSIONS = {*_CORE, "specversion", "data", "data_base64"}
TARGET_EXTENSION = "eddainstanceid"


class EventTimeoutError(TimeoutError):
    """No event of the awaited type arrived in time. Also a builtin `TimeoutError`."""

    def __init__(self, event_type: str, timeout_seconds: float) -> None:
        super().__init__(
            f"Event '{event_type}' did not arrive within {timeout_seconds:g} seconds")
        self.event_type = event_type
        self.timeout_seconds = timeout_seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.event_type, self.timeout_seconds))


@dataclass(frozen=True)
class ReceivedEvent:
    """A CloudEvent as `wait_event` returns it."""

    data: dict[str, Any] | Any
    type: str
    source: str
    id: str
    time: str | None = None
    datacontenttype: str | None = None
    subject: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> ReceivedEvent:
        """The CloudEvent attributes, as Edda's README reads them (``event.metadata.source``,
        ``event.metadata.type``): the event itself."""
        return self


def check_event_type(event_type: object) -> str:
    """Raises TypeError or ValueError unless ``event_type`` is a non-empty string."""
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a string, got {type(event_type).__name__}")
    if not event_type.strip():
        raise ValueError("event_type must be a non-empty string")
    return event_type


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    """An incoming CloudEvent ready to store."""

    type: str
    attributes: dict[str, Any]
    data_bytes: bytes | None
    target_instance_id: str | None


def normalize_cloudevent(event: Any) -> NormalizedEvent:
    """A CloudEvent given as a mapping of attributes or as a ``cloudevents`` SDK object.

    Raises:
        ValueError: If ``type`` or ``source`` is missing or empty, or an attribute
            cannot be stored.
    """
    if hasattr(event, "get_attributes") and hasattr(event, "get_data"):
        fields = {**dict(event.get_attributes()), "data": event.get_data()}
    elif isinstance(event, Mapping):
        fields = dict(event)
    else:
        raise ValueError(f"a CloudEvent must be a mapping or a CloudEvent object, "
                         f"got {type(event).__name__}")
    for required in ("type", "source"):
        value = fields.get(required)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"CloudEvent attribute {required!r} is missing or empty")
    check_key(fields["type"], "CloudEvent attribute 'type'")
    check_key(fields["source"], "CloudEvent attribute 'source'", limit=2048)
    if fields.get("id") is not None:
        check_key(str(fields["id"]), "CloudEvent attribute 'id'")
    data = fields.get("data")
    data_bytes = None
    if isinstance(data, bytes | bytearray):
        data_bytes, data = bytes(data), None
    try:
        stored_data = to_jsonable(data, what=f"data of CloudEvent {fields['type']!r}")
        extensions = {str(k).lower(): to_jsonable(v, what=f"extension {k!r}")
                      for k, v in fields.items() if k not in _NOT_EXTENSIONS}
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    attributes: dict[str, Any] = {
        "type": fields["type"],
        "source": fields["source"],
        "id": str(fields.get("id") or uuid.uuid4()),
        "time": None if fields.get("time") is None else str(fields["time"]),
        "datacontenttype": fields.get("datacontenttype"),
        "subject": fields.get("subject"),
        "extensions": extensions,
        "data": stored_data,
    }
    target = extensions.get(TARGET_EXTENSION)
    if target is not None:
        check_key(str(target), f"CloudEvent extension {TARGET_EXTENSION!r}")
    return NormalizedEvent(fields["type"], attributes, data_bytes,
                           None if target is None else str(target))


@overload
def wait_event(ctx: WorkflowContext, event_type: str, timeout_seconds: float | None = None,
               model: None = None, event_id: str | None = None
               ) -> Coroutine[Any, Any, ReceivedEvent]: ...


@overload
def wait_event(ctx: WorkflowContext, event_type: str, timeout_seconds: float | None = None,
               *, model: type[M], event_id: str | None = None
               ) -> Coroutine[Any, Any, ReceivedEvent]: ...


def wait_event(
    ctx: WorkflowContext,
    event_type: str,
    timeout_seconds: float | None = None,
    model: type[Any] | None = None,
    event_id: str | None = None,
) -> Coroutine[Any, Any, ReceivedEvent]:
    """Wait durably for the next CloudEvent of ``event_type`` for this workflow.

    Args:
        ctx: The workflow's context.
        event_type: The CloudEvent ``type`` to wait for.
        timeout_seconds: Give up after this long (None: wait for ever).
        model: A pydantic model (or any type) to validate ``data`` into.
        event_id: An explicit position instead of ``"receive_{event_type}:N"``.

    Raises:
        TypeError, ValueError: For a bad event type or timeout (at the call).
        EventTimeoutError: If the timeout passes first; also a `TimeoutError`.
        pydantic.ValidationError: If ``model`` rejects the event's data (the event
            counts as received by this workflow; other workflows still get it).
    """
    require_context(ctx, "wait_event")
    check_event_type(event_type)
    timeout = None if timeout_seconds is None else check_seconds(timeout_seconds,
                                                                 "timeout_seconds")
    position, call = ctx._reserve(f"receive_{event_type}", event_id)
    return _wait_event(ctx, position, call, event_type, timeout, model)


async def _wait_event(ctx: WorkflowContext, position: str, call: int, event_type: str,
                      timeout: float | None, model: type[Any] | None) -> ReceivedEvent:
    run = ctx._run

    async def poll() -> Delivery | None:
        found = await run.stores.waits.next_event(ctx.instance_id, event_type, run.started_at)
        if found is None:
            return None
        return Delivery(
            lambda position, call: EventReceived(position=position, call=call,
                                                 event_id=found.id, event=found.attributes,
                                                 data_bytes=found.data_bytes),
            (MarkDelivered(ctx.instance_id, found.id),),
        )

    entry, live = await durable_wait(
        ctx, position, call, operation=f"wait_event {event_type!r}", wait_type="event",
        key=event_type, deadline=lambda now: None if timeout is None else now + timeout,
        status="waiting_for_message", poll=poll,
    )
    if not isinstance(entry, EventReceived):
        raise EventTimeoutError(event_type, timeout if timeout is not None else 0)
    attributes = entry.event
    data: Any = attributes.get("data")
    if entry.data_bytes is not None:
        data = {"_binary": entry.data_bytes}
    if live:
        await fire(ctx.hooks, "on_event_context", ctx.instance_id, event_type,
                   dict(attributes.get("extensions") or {}))
        await fire(ctx.hooks, "on_event_received", ctx.instance_id, event_type, data)
    if model is not None:
        data = restore(data, model)
    return ReceivedEvent(
        data=data, type=event_type, source=attributes.get("source") or "unknown",
        id=attributes.get("id") or str(entry.event_id), time=attributes.get("time"),
        datacontenttype=attributes.get("datacontenttype"), subject=attributes.get("subject"),
        extensions=dict(attributes.get("extensions") or {}),
    )


async def send_event(
    event_type: str,
    source: str,
    data: dict[str, Any] | Any,
    broker_url: str | None = None,
    datacontenttype: str | None = None,
    *,
    extensions: dict[str, Any] | None = None,
) -> None:
    """Send a CloudEvent now, without a transaction (not replay-safe in a body).

    With ``broker_url`` the event is POSTed there in structured mode (timeout
    10 s), as Edda does. Without it (the default here) it is stored and
    delivered to the workflows of the running app; pass
    ``extensions={"eddainstanceid": id}`` to reach one instance.

    Raises:
        RuntimeError: If no ``broker_url`` is given and no EddaApp is initialised.
        ValueError: For an empty type or source, or data that cannot be stored.
        httpx.HTTPError: If the broker cannot be reached or answers an error.
    """
    check_event_type(event_type)
    app = current_app() if broker_url is not None else await ready_app()
    extensions = outgoing_extensions(None if app is None else app.hooks, None, extensions)
    if broker_url is not None:
        await _post_event(event_type, source, data, broker_url, datacontenttype, extensions)
        return
    if app is None:
        raise RuntimeError("send_event() needs an initialised EddaApp (await app.initialize()) "
                           "or a broker_url")
    event: dict[str, Any] = {"type": event_type, "source": source, "data": data,
                             "datacontenttype": datacontenttype, **(extensions or {})}
    await app.handle_cloudevent(event)
    await fire(app.hooks, "on_event_sent", event_type, source, data)


def outgoing_extensions(hooks: object | None, instance_id: str | None,
                        extensions: Mapping[str, Any] | None) -> dict[str, Any]:
    """The extension attributes of an event sent now: what the hooks add (a trace
    context, say; see `TracingHooks`) under the caller's own."""
    added = ask(hooks, "outgoing_event_extensions", instance_id)
    if not isinstance(added, Mapping):
        added = {}
    # What an observer adds must never make the send fail: anything unfit is left out.
    fit: dict[str, Any] = {}
    for name, value in added.items():
        try:
            fit.update(check_extensions({str(name).lower(): value}))
        except (TypeError, ValueError):
            log.warning("hooks %r gave an unfit CloudEvent extension %r; left out",
                        type(hooks).__name__, name)
    return {**fit, **{str(k).lower(): v for k, v in (extensions or {}).items()}}


def check_extensions(extensions: dict[str, Any]) -> dict[str, Any]:
    """Extension attributes that can be sent as they are.

    Raises:
        ValueError: If a name is not lower-case letters and digits, or is a core
            attribute's.
        TypeError: If a value is not a string, number or boolean.
    """
    for name, value in extensions.items():
        if name in _NOT_EXTENSIONS or not (name.isascii() and name.isalnum()):
            raise ValueError(f"CloudEvent extension name {name!r} must be lower-case letters "
                             "and digits, and not a core attribute")
        if not isinstance(value, str | int | float | bool):
            raise TypeError(f"CloudEvent extension {name!r} must be a string, number or "
                            f"boolean, got {type(value).__name__}")
    return extensions


async def _post_event(event_type: str, source: str, data: Any, broker_url: str,
                      datacontenttype: str | None, extensions: dict[str, Any] | None) -> None:
    import httpx

    from edda.runtime.relayer import cloudevent_request

    if not isinstance(source, str) or not source.strip():
        raise ValueError("source must be a non-empty string")
    try:
        stored = to_jsonable(data, what=f"data of CloudEvent {event_type!r}")
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    headers, body = cloudevent_request(str(uuid.uuid4()), event_type, source, stored, None,
                                       datacontenttype, extensions)
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(broker_url, content=body, headers=headers)
        response.raise_for_status()
    app = current_app()
    await fire(None if app is None else app.hooks, "on_event_sent", event_type, source, data)
