"""`OpenTelemetryHooks`: a span per workflow run, a child span per executed activity.

The workflow span is opened when a run begins in this process
(``on_workflow_activated``), not at ``on_workflow_start``: the start may happen on
another node than the run, and a run resumed after a crash or a restart never
sees ``on_workflow_start`` at all. The start only notes the caller's trace
context and time for the run that follows. A resumed run opens a new span
(``edda.workflow.resumed=True``) that continues the trace stored in the instance's
input (``_trace_context``, which every workflow accepts and a CloudEvent that
starts one fills from its ``traceparent``); without one it begins a new trace.

Replayed activities make no span: only work done now is traced. An activity span
is the current span while the activity runs, so spans the user's code makes
nest under it and ``send_event_transactional`` sends its ``traceparent``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edda.integrations.opentelemetry.metrics import SCOPE, WorkflowMetrics
from edda.integrations.opentelemetry.propagation import (
    OTEL_MISSING,
    carrier_of,
    context_of,
    extract_trace_context,
    install_hint,
)
from edda.integrations.opentelemetry.providers import otlp_meter_provider, otlp_tracer_provider
from edda.runtime.hooks import HooksBase
from edda.runtime.workflow import TRACE_CONTEXT_KEY

if not OTEL_MISSING:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import Status, StatusCode

if TYPE_CHECKING:
    from collections.abc import Mapping
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

#: Starts noted for runs that may happen on another node are forgotten past this many.
_MAX_PENDING = 10_000


class OpenTelemetryHooks(HooksBase):
    """Workflow hooks that record OpenTelemetry spans and, optionally, metrics.

    Args:
        service_name: ``service.name`` of the providers made for ``otlp_endpoint``.
        otlp_endpoint: An OTLP http/protobuf endpoint (``http://localhost:4318``):
            spans (and metrics, if enabled) are exported there by providers these
            hooks own, for whichever of the two providers is not given.
        enable_metrics: Record the counters and histograms of `WorkflowMetrics`.
        tracer_provider: The provider to trace with (beyond Edda); by default the
            global one.
        meter_provider: The provider to measure with (beyond Edda); by default the
            global one.

    Raises:
        ImportError: If OpenTelemetry (or, for ``otlp_endpoint``, its SDK and OTLP
            exporter) is not installed.
        ValueError: If ``otlp_endpoint`` is not an http(s) URL.
    """

    def __init__(
        self,
        service_name: str = "edda",
        otlp_endpoint: str | None = None,
        enable_metrics: bool = False,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if OTEL_MISSING:
            raise install_hint()
        self.service_name = service_name
        #: Providers made here, shut down by `shutdown`.
        self._owned: list[Any] = []
        if otlp_endpoint is not None and tracer_provider is None:
            tracer_provider = otlp_tracer_provider(service_name, otlp_endpoint)
            self._owned.append(tracer_provider)
        if otlp_endpoint is not None and enable_metrics and meter_provider is None:
            meter_provider = otlp_meter_provider(service_name, otlp_endpoint)
            self._owned.append(meter_provider)
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE)
        self._metrics = (WorkflowMetrics(meter_provider or metrics.get_meter_provider())
                         if enable_metrics else None)
        self._workflow_spans: dict[str, Span] = {}
        #: When each traced instance started (UNIX seconds), for its duration.
        self._workflow_start_times: dict[str, float] = {}
        #: Starts seen here: the caller's context and the time, for the run to come.
        self._pending: dict[str, tuple[Context, float]] = {}
        #: Spans of activities running now, by ``"{instance_id}:{activity_id}"``.
        self._activity_spans: dict[str, Span] = {}
        #: Their instance, start (monotonic) and the token that made them current.
        self._activity_runs: dict[str, tuple[str, float, Token[Context]]] = {}

    # -- workflows -----------------------------------------------------------------

    async def on_workflow_start(self, instance_id: str, workflow_name: str,
                                input_data: dict[str, Any]) -> None:
        if self._metrics is not None:
            self._metrics.workflow_started.add(1, {"edda.workflow.name": workflow_name})
        span = self._workflow_spans.get(instance_id)
        if span is not None:  # its run began first (a recurred instance)
            span.set_attribute("edda.workflow.resumed", False)
            return
        parent = extract_trace_context(input_data) or otel_context.get_current()
        self._pending[instance_id] = (parent, time.time())
        while len(self._pending) > _MAX_PENDING:
            del self._pending[next(iter(self._pending))]

    async def on_workflow_activated(self, instance_id: str, workflow_name: str,
                                    input_data: dict[str, Any], started_at: float) -> None:
        self._workflow_span(instance_id, workflow_name, input_data, started_at)

    async def on_workflow_complete(self, instance_id: str, workflow_name: str,
                                   result: Any) -> None:
        span = self._end_run(instance_id, workflow_name, "completed")
        span.set_status(Status(StatusCode.OK))
        span.end()

    async def on_workflow_failed(self, instance_id: str, workflow_name: str,
                                 error: Exception) -> None:
        span = self._end_run(instance_id, workflow_name, "failed")
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()

    async def on_workflow_cancelled(self, instance_id: str, workflow_name: str) -> None:
        span = self._end_run(instance_id, workflow_name, "cancelled")
        span.set_attribute("edda.workflow.cancelled", True)
        span.set_status(Status(StatusCode.OK))
        span.end()

    async def on_compensation(self, instance_id: str, workflow_name: str,
                              compensation_name: str, registered_at: str,
                              error: Exception | None) -> None:
        attributes: dict[str, Any] = {"edda.compensation.name": compensation_name,
                                      "edda.compensation.registered_at": registered_at,
                                      "edda.compensation.succeeded": error is None}
        if error is not None:
            attributes.update(_exception_attributes(error))
        self._workflow_span(instance_id, workflow_name).add_event("compensation", attributes)

    def _workflow_span(self, instance_id: str, workflow_name: str,
                       input_data: Mapping[str, Any] | None = None,
                       started_at: float | None = None) -> Span:
        """The instance's span, opened now if this process has none."""
        span = self._workflow_spans.get(instance_id)
        if span is not None:
            return span
        pending = self._pending.pop(instance_id, None)
        attributes: dict[str, Any] = {
            "edda.workflow.instance_id": instance_id,
            "edda.workflow.name": workflow_name,
            "edda.workflow.input_keys": sorted(k for k in input_data or {}
                                               if k != TRACE_CONTEXT_KEY),
            "edda.workflow.resumed": pending is None,
        }
        start_time: int | None = None
        if pending is not None:  # started here: continue the caller's trace, from then
            parent: Context | None = pending[0]
            started_at = pending[1]
            start_time = int(started_at * 1e9)
        else:
            parent = None if input_data is None else extract_trace_context(input_data)
        span = self._tracer.start_span(f"workflow:{workflow_name}", context=parent,
                                       attributes=attributes, start_time=start_time)
        self._workflow_spans[instance_id] = span
        if started_at is not None:
            self._workflow_start_times[instance_id] = started_at
        return span

    def _end_run(self, instance_id: str, workflow_name: str, status: str) -> Span:
        """The instance's span, to end now, after its leftover activity spans."""
        span = self._workflow_span(instance_id, workflow_name)
        del self._workflow_spans[instance_id]
        self._pending.pop(instance_id, None)
        for key in [k for k, run in self._activity_runs.items() if run[0] == instance_id]:
            self._abandon(key, f"the workflow was {status} first")
        started = self._workflow_start_times.pop(instance_id, None)
        if self._metrics is not None:
            self._metrics.workflow_ended(workflow_name, status,
                                         None if started is None else time.time() - started)
        return span

    # -- activities ----------------------------------------------------------------

    async def on_activity_start(self, instance_id: str, activity_id: str,
                                activity_name: str, is_replaying: bool) -> None:
        if is_replaying:
            return  # its recorded outcome is returned: nothing runs, nothing to trace
        key = f"{instance_id}:{activity_id}"
        if key in self._activity_spans:  # a run that crashed left it open
            self._abandon(key, "its run was restarted")
        workflow_span = self._workflow_spans.get(instance_id)
        parent = None if workflow_span is None else trace.set_span_in_context(workflow_span)
        span = self._tracer.start_span(f"activity:{activity_name}", context=parent, attributes={
            "edda.activity.id": activity_id,
            "edda.activity.name": activity_name,
            "edda.activity.is_replaying": False,
            "edda.workflow.instance_id": instance_id,
        })
        self._activity_spans[key] = span
        # The activity runs in this task from here on: its span is the current one.
        token = otel_context.attach(trace.set_span_in_context(span))
        self._activity_runs[key] = (instance_id, time.monotonic(), token)

    async def on_activity_complete(self, instance_id: str, activity_id: str,
                                   activity_name: str, result: Any, cache_hit: bool) -> None:
        if cache_hit:
            if self._metrics is not None:
                self._metrics.activity_cache_hit.add(1, {"edda.activity.name": activity_name})
            return
        span = self._end_activity(f"{instance_id}:{activity_id}", activity_name, "completed")
        if span is not None:
            span.set_attribute("edda.activity.cache_hit", False)
            span.set_status(Status(StatusCode.OK))
            span.end()

    async def on_activity_failed(self, instance_id: str, activity_id: str,
                                 activity_name: str, error: Exception) -> None:
        span = self._end_activity(f"{instance_id}:{activity_id}", activity_name, "failed")
        if span is not None:  # None: a recorded failure, replayed
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, _describe(error)))
            span.end()

    async def on_activity_retry(self, instance_id: str, activity_id: str, activity_name: str,
                                error: Exception, attempt: int, delay: float) -> None:
        span = self._activity_spans.get(f"{instance_id}:{activity_id}")
        if span is not None:
            span.add_event("retry", {"edda.retry.attempt": attempt, "edda.retry.delay": delay,
                                     **_exception_attributes(error)})

    def _end_activity(self, key: str, activity_name: str, status: str) -> Span | None:
        span = self._activity_spans.pop(key, None)
        run = self._activity_runs.pop(key, None)
        if span is None or run is None:
            return None
        otel_context.detach(run[2])
        if self._metrics is not None:
            self._metrics.activity_ended(activity_name, status, time.monotonic() - run[1])
        return span

    def _abandon(self, key: str, why: str) -> None:
        """End an activity span whose outcome will never be heard of (cancelled,
        or its run stopped); its context is not detached: its task has moved on."""
        span = self._activity_spans.pop(key)
        self._activity_runs.pop(key, None)
        span.set_status(Status(StatusCode.ERROR, f"no outcome: {why}"))
        span.end()

    # -- events --------------------------------------------------------------------

    async def on_event_context(self, instance_id: str, event_type: str,
                               extensions: dict[str, Any]) -> None:
        parent = context_of(extensions)
        span = self._workflow_spans.get(instance_id)
        if parent is not None and span is not None:
            span.add_link(trace.get_current_span(parent).get_span_context(),
                          {"edda.event.type": event_type})

    async def on_event_received(self, instance_id: str, event_type: str,
                                event_data: dict[str, Any]) -> None:
        span = self._workflow_spans.get(instance_id)
        if span is not None:
            span.add_event("event_received", {"edda.event.type": event_type})

    async def on_event_sent(self, event_type: str, event_source: str,
                            event_data: dict[str, Any]) -> None:
        span = self._tracer.start_span(f"event:send:{event_type}", attributes={
            "edda.event.type": event_type, "edda.event.source": event_source})
        span.end()

    def outgoing_event_extensions(self, instance_id: str | None) -> dict[str, str]:
        """The current trace context, for a CloudEvent sent now: the running
        activity's span (or a span the user made inside it), else the span of
        workflow ``instance_id``."""
        current = trace.get_current_span()
        workflow_span = None if instance_id is None else self._workflow_spans.get(instance_id)
        if workflow_span is not None and (current.get_span_context().trace_id
                                          != workflow_span.get_span_context().trace_id):
            current = workflow_span  # the task's context belongs to someone else
        return carrier_of(current)

    # -- the public extras ---------------------------------------------------------

    def get_trace_context(self, instance_id: str) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of workflow ``instance_id``'s span in
        this process; empty if it has none here."""
        span = self._workflow_spans.get(instance_id)
        return {} if span is None else carrier_of(span)

    def shutdown(self) -> None:
        """End the spans still open (runs this process leaves unfinished, marked
        ``edda.workflow.interrupted``; a later run opens a resumed span), then flush
        and shut down the providers made for ``otlp_endpoint``. Call it after the
        app's shutdown. It blocks while exporting: from async code, run it in a
        thread (``await anyio.to_thread.run_sync(hooks.shutdown)``)."""
        for key in list(self._activity_spans):
            self._abandon(key, "the process stopped tracing")
        for span in self._workflow_spans.values():
            span.set_attribute("edda.workflow.interrupted", True)
            span.end()
        self._workflow_spans.clear()
        self._workflow_start_times.clear()
        self._pending.clear()
        for provider in self._owned:
            provider.shutdown()
        self._owned.clear()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _exception_attributes(error: BaseException) -> dict[str, str]:
    return {"exception.type": type(error).__qualname__, "exception.message": str(error)}
