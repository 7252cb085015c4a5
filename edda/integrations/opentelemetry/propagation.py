"""W3C trace context in and out of plain dicts: workflow input, event data, CloudEvents.

A trace context travels as the two W3C strings, ``traceparent`` and
``tracestate``, never as OpenTelemetry objects, because it is stored: in a
workflow's input (under ``_trace_context``), in an outbox row, in a CloudEvent's
extension attributes (the CloudEvents distributed-tracing extension).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edda._extras import install_hint as extra_hint
from edda.runtime.workflow import TRACE_CONTEXT_KEY

try:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - checked by install_hint() callers
    OTEL_MISSING = True
else:
    OTEL_MISSING = False
    PROPAGATOR = TraceContextTextMapPropagator()

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from edda.integrations.opentelemetry.hooks import OpenTelemetryHooks

#: The keys a carrier may hold.
TRACE_KEYS = ("traceparent", "tracestate")


def install_hint() -> ImportError:
    return ImportError(
        "edda.integrations.opentelemetry needs OpenTelemetry: " + extra_hint('otel'))


def carrier_of(span: Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``, if any) naming ``span``; empty if it is invalid."""
    carrier: dict[str, str] = {}
    if span.get_span_context().is_valid:
        PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier


def context_of(carrier: Mapping[str, Any]) -> Context | None:
    """The remote parent a carrier names, or None if it names no valid one."""
    strings = {k: v for k, v in carrier.items() if k in TRACE_KEYS and isinstance(v, str)}
    if "traceparent" not in strings:
        return None
    context = PROPAGATOR.extract(strings)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def extract_trace_context(event_data: Mapping[str, Any]) -> Context | None:
    """The trace context carried by event data or a workflow's input: its
    ``_trace_context`` dict, else top-level ``traceparent``/``tracestate``.

    Returns:
        An OpenTelemetry `Context` to parent spans with, or None if there is none
        (or it is malformed).

    Raises:
        ImportError: If OpenTelemetry is not installed.
    """
    if OTEL_MISSING:
        raise install_hint()
    nested = event_data.get(TRACE_CONTEXT_KEY)
    if isinstance(nested, Mapping):
        found = context_of(nested)
        if found is not None:
            return found
    return context_of(event_data)


def inject_trace_context(hooks: OpenTelemetryHooks, instance_id: str,
                         event_data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``event_data`` with ``_trace_context`` naming the span of workflow
    ``instance_id``, so that what it starts or sends continues that trace (the copy
    is unchanged if the instance has no span here).

    ``await child.start(**inject_trace_context(hooks, ctx.instance_id, {...}))``:
    every workflow accepts ``_trace_context``.

    Raises:
        ImportError: If OpenTelemetry is not installed.
    """
    if OTEL_MISSING:
        raise install_hint()
    copied = dict(event_data)
    carrier = hooks.get_trace_context(instance_id)
    if carrier:
        copied[TRACE_CONTEXT_KEY] = carrier
    return copied
