"""OpenTelemetry tracing and metrics for Edda workflows.

Install with ``pip install 'edda-actors[otel]'``::

    hooks = OpenTelemetryHooks(service_name="orders", otlp_endpoint="http://localhost:4318")
    app = EddaApp("orders", "sqlite:///orders.db", hooks=hooks)

Each workflow run is a ``workflow:{name}`` span, parent of an ``activity:{name}``
span per activity it executes (replayed ones make none). Trace context crosses
CloudEvents both ways (``traceparent`` / ``tracestate`` extension attributes,
outbox included) and workflow starts (``_trace_context`` in the input). See
docs/observability.md.
"""

from edda.integrations.opentelemetry.hooks import OpenTelemetryHooks
from edda.integrations.opentelemetry.metrics import WorkflowMetrics
from edda.integrations.opentelemetry.propagation import (
    extract_trace_context,
    inject_trace_context,
)

__all__ = [
    "OpenTelemetryHooks",
    "WorkflowMetrics",
    "extract_trace_context",
    "inject_trace_context",
]

OpenTelemetryHooks.__module__ = __name__
WorkflowMetrics.__module__ = __name__
