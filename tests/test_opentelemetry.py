"""The OpenTelemetry hooks, end to end: real workflows, the SDK's in-memory span
exporter and metric reader, CloudEvents over real HTTP, the outbox to a real sink."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from edda import (
    EddaApp,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    on_failure,
    send_event,
    send_event_transactional,
    wait_event,
    workflow,
)
from edda.integrations.opentelemetry import (
    OpenTelemetryHooks,
    extract_trace_context,
    inject_trace_context,
)
from tests.support.gates import Gate, finished, settle, wait_for, wait_until
from tests.support.web import Sink, read_body, serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
ENDED = ("completed", "failed", "cancelled")
CE = {"content-type": "application/cloudevents+json"}


@dataclass
class Otel:
    """Fresh SDK providers that keep everything in memory."""

    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    reader: InMemoryMetricReader
    meter_provider: MeterProvider

    def hooks(self, **kwargs: Any) -> OpenTelemetryHooks:
        return OpenTelemetryHooks(tracer_provider=self.tracer_provider,
                                  meter_provider=self.meter_provider, **kwargs)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {self.finished()}"
        return found[0]

    def metric(self, name: str, **attributes: Any) -> float:
        """A counter's value, or a histogram's count, over the matching points."""
        total = 0.0
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if not attributes.items() <= dict(point.attributes or {}).items():
                            continue
                        if isinstance(point, HistogramDataPoint):
                            total += point.count
                        elif isinstance(point, NumberDataPoint):
                            total += point.value
        return total

    def tracer(self) -> trace.Tracer:
        return self.tracer_provider.get_tracer("tests")


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, tracer_provider, reader, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _carrier(span: trace.Span, tracestate: str | None = None) -> dict[str, str]:
    context = span.get_span_context()
    carrier = {"traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-01"}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    return carrier


# -- a workflow, its activities and a retry ---------------------------------------------

flaky_calls: Counter[str] = Counter()


@activity(retry_policy=RetryPolicy(initial_interval=0.01, max_attempts=3))
async def otel_flaky(ctx: WorkflowContext, key: str) -> str:
    flaky_calls[key] += 1
    if flaky_calls[key] == 1:
        raise ConnectionError("the partner hung up")
    return key.upper()


@activity
async def otel_step(ctx: WorkflowContext, n: int) -> int:
    return n + 1


@workflow
async def otel_order(ctx: WorkflowContext, key: str) -> str:
    first = await otel_flaky(ctx, key)
    second = await otel_step(ctx, 1)
    return f"{first}-{second}"


async def test_workflow_span_is_the_parent_of_activity_spans_with_a_retry_event(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks())
    await app.initialize()
    with otel.tracer().start_as_current_span("caller") as caller:
        iid = await otel_order.start(key="k1")
    assert (await finished(app, iid))["output_data"]["result"] == "K1-2"

    wf = otel.one("workflow:otel_order")
    flaky = otel.one("activity:otel_flaky")
    step = otel.one("activity:otel_step")
    assert _parent_of(wf) == caller.get_span_context().span_id
    assert {s.context.trace_id for s in (wf, flaky, step)} == {
        caller.get_span_context().trace_id}
    assert _parent_of(flaky) == _parent_of(step) == wf.context.span_id
    assert dict(wf.attributes or {}) == {
        "edda.workflow.instance_id": iid, "edda.workflow.name": "otel_order",
        "edda.workflow.input_keys": ("key",), "edda.workflow.resumed": False}
    assert wf.status.status_code is StatusCode.OK
    assert dict(flaky.attributes or {}) == {
        "edda.activity.id": "otel_flaky:1", "edda.activity.name": "otel_flaky",
        "edda.activity.is_replaying": False, "edda.workflow.instance_id": iid,
        "edda.activity.cache_hit": False}
    assert flaky.status.status_code is StatusCode.OK
    assert [e.name for e in flaky.events] == ["retry"]
    retry = dict(flaky.events[0].attributes or {})
    assert retry["edda.retry.attempt"] == 1
    assert retry["exception.type"] == "ConnectionError"
    assert retry["exception.message"] == "the partner hung up"
    assert list(step.events) == []
    # The workflow span ends last and spans the activities.
    assert wf.start_time is not None and flaky.start_time is not None
    assert wf.start_time <= flaky.start_time and step.end_time <= wf.end_time  # type: ignore[operator]


# -- saga: failure, compensation, cancellation ------------------------------------------

released: list[str] = []
cancel_gates: dict[str, Gate] = {}


async def otel_release(ctx: WorkflowContext, item: str) -> None:
    released.append(item)


@activity
@on_failure(otel_release)
async def otel_reserve(ctx: WorkflowContext, item: str) -> str:
    return f"r-{item}"


@activity
async def otel_charge(ctx: WorkflowContext, item: str) -> str:
    raise TerminalError(f"card declined for {item}")


@workflow
async def otel_saga(ctx: WorkflowContext, item: str) -> str:
    await otel_reserve(ctx, item)
    return await otel_charge(ctx, item)


@workflow
async def otel_cancellable(ctx: WorkflowContext, item: str) -> str:
    await otel_reserve(ctx, item)
    event = await wait_event(ctx, "otel.never")
    return str(event.data)


async def test_a_failure_records_the_error_and_the_compensation(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks())
    await app.initialize()
    with pytest.raises(Exception, match="card declined for chair"):
        await otel_saga.start(item="chair")
    assert "chair" in released

    wf = otel.one("workflow:otel_saga")
    charge = otel.one("activity:otel_charge")
    assert _parent_of(charge) == wf.context.span_id
    assert charge.status.status_code is StatusCode.ERROR
    assert "card declined for chair" in (charge.status.description or "")
    assert [e.name for e in charge.events] == ["exception"]
    assert wf.status.status_code is StatusCode.ERROR
    names = [e.name for e in wf.events]
    assert names == ["compensation", "exception"], names
    compensation = dict(wf.events[0].attributes or {})
    assert compensation == {"edda.compensation.name": "otel_release",
                            "edda.compensation.registered_at": "otel_reserve:1",
                            "edda.compensation.succeeded": True}
    assert dict(wf.events[1].attributes or {})["exception.message"] == (
        "card declined for chair")


async def test_a_cancel_marks_the_span_cancelled_after_compensating(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks())
    await app.initialize()
    iid = await otel_cancellable.start(item="lamp")  # returns once it waits
    assert await app.cancel_workflow(iid)
    await finished(app, iid, statuses=("cancelled",))
    await wait_until(lambda: bool(otel.named("workflow:otel_cancellable")),
                     "the workflow span to end")
    wf = otel.one("workflow:otel_cancellable")
    assert dict(wf.attributes or {})["edda.workflow.cancelled"] is True
    assert wf.status.status_code is StatusCode.OK
    assert [e.name for e in wf.events] == ["compensation"]
    assert "lamp" in released


stubborn_calls: Counter[str] = Counter()


@activity(retry_policy=RetryPolicy(initial_interval=0.02, backoff_coefficient=1.0,
                                   max_attempts=10_000))
async def otel_stubborn(ctx: WorkflowContext, item: str) -> str:
    stubborn_calls[item] += 1
    raise ConnectionError("still down")


@workflow
async def otel_retries(ctx: WorkflowContext, item: str) -> str:
    return str(await otel_stubborn(ctx, item))


async def test_a_cancel_during_retries_ends_the_activity_span_too(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks())
    await app.initialize()
    task = asyncio.create_task(otel_retries.start(item="vase", instance_id="otel-vase"))
    await wait_until(lambda: stubborn_calls["vase"] >= 3, "a few failed attempts")
    assert await app.cancel_workflow("otel-vase")
    await finished(app, "otel-vase", statuses=("cancelled",))
    await settle(task)
    await wait_until(lambda: bool(otel.named("workflow:otel_retries")), "the workflow span")
    wf = otel.one("workflow:otel_retries")
    stubborn = otel.one("activity:otel_stubborn")
    assert _parent_of(stubborn) == wf.context.span_id
    assert stubborn.status.status_code is StatusCode.ERROR
    assert stubborn.status.description == "no outcome: the workflow was cancelled first"
    assert len(stubborn.events) >= 2 and {e.name for e in stubborn.events} == {"retry"}
    assert stubborn.end_time is not None and wf.end_time is not None
    assert stubborn.end_time <= wf.end_time


# -- CloudEvents over HTTP: a wait woken, a workflow started -----------------------------

@workflow
async def otel_awaits(ctx: WorkflowContext, order_id: str) -> Any:
    event = await wait_event(ctx, "otel.paid")
    return event.data


@workflow
async def otel_child(ctx: WorkflowContext, order_id: str) -> str:
    return order_id


@workflow(event_handler=True)
async def otel_placed(ctx: WorkflowContext, order_id: str) -> str:
    return f"{order_id}:{await otel_step(ctx, 41)}"


async def test_a_cloudevent_with_traceparent_links_the_wait_and_parents_a_start(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    hooks = otel.hooks()
    app = make_app(sqlite_url, hooks=hooks)
    await app.initialize()
    iid = await otel_awaits.start(order_id="o-1")
    waiting = hooks.get_trace_context(iid)
    assert set(waiting) == {"traceparent"}

    # A child started with the waiting workflow's context is its child span.
    child_id = await otel_child.start(**inject_trace_context(hooks, iid, {"order_id": "c-1"}))
    await finished(app, child_id)

    sender = otel.tracer().start_span("sender")
    paid = {"specversion": "1.0", "id": "pay-1", "type": "otel.paid", "source": "/payments",
            "eddainstanceid": iid, "data": {"amount": 5},
            **_carrier(sender, tracestate="vendor=paid")}
    placed = _carrier(sender, tracestate="vendor=placed")
    binary = {"ce-specversion": "1.0", "ce-id": "place-1", "ce-type": "otel_placed",
              "ce-source": "/shop", "content-type": "application/json",
              **{f"ce-{k}": v for k, v in placed.items()}}
    async with serve(app) as base, httpx.AsyncClient() as client:
        assert (await client.post(base, json=paid, headers=CE)).status_code == 202
        assert (await client.post(base, json={"order_id": "o-2"},
                                  headers=binary)).status_code == 202
        await finished(app, iid, statuses=ENDED)
        found = (await app.find_instances(workflow_name="otel_placed"))["instances"]
        assert len(found) == 1
        started = await finished(app, found[0]["instance_id"], statuses=ENDED)
    sender.end()
    sent = sender.get_span_context()

    woken = otel.one("workflow:otel_awaits")
    assert woken.context.trace_id != sent.trace_id, "a wait is linked, not re-parented"
    assert [(link.context.trace_id, link.context.span_id) for link in woken.links] == [
        (sent.trace_id, sent.span_id)]
    assert dict(woken.links[0].attributes or {}) == {"edda.event.type": "otel.paid"}
    assert woken.links[0].context.trace_state.get("vendor") == "paid"
    assert [e.name for e in woken.events] == ["event_received"]

    child = otel.one("workflow:otel_child")
    assert _parent_of(child) == woken.context.span_id
    assert child.context.trace_id == woken.context.trace_id
    assert dict(child.attributes or {})["edda.workflow.input_keys"] == ("order_id",)

    by_event = otel.one("workflow:otel_placed")
    assert _parent_of(by_event) == sent.span_id
    assert by_event.context.trace_id == sent.trace_id
    assert by_event.context.trace_state.get("vendor") == "placed"
    assert started["input_data"]["_trace_context"] == placed  # durable with the input
    step = otel.one("activity:otel_step")
    assert _parent_of(step) == by_event.context.span_id


# -- a run resumed after a restart: replayed activities make no span ---------------------

restart_gates: dict[str, Gate] = {}
restart_runs: Counter[str] = Counter()


@activity
async def otel_first(ctx: WorkflowContext, key: str) -> str:
    restart_runs[f"first:{key}"] += 1
    return "one"


@activity
async def otel_held(ctx: WorkflowContext, key: str) -> str:
    restart_runs[f"held:{key}"] += 1
    if key in restart_gates:
        await restart_gates[key].hold()
    return "two"


@workflow
async def otel_restart(ctx: WorkflowContext, key: str) -> list[str]:
    return [await otel_first(ctx, key), await otel_held(ctx, key)]


async def test_a_run_resumed_after_restart_continues_the_trace_without_replayed_spans(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    # As tests/support/gates.interrupt_and_restart, with each node's own hooks.
    caller = otel.tracer().start_span("caller")
    restart_gates["r1"] = Gate()
    first_hooks = otel.hooks(enable_metrics=True)
    first = make_app(sqlite_url, hooks=first_hooks)
    await first.initialize()
    task = asyncio.create_task(otel_restart.start(key="r1", instance_id="otel-r1",
                                                  _trace_context=_carrier(caller)))
    await wait_for(restart_gates["r1"].reached)
    await first.shutdown()
    await settle(task)
    first_hooks.shutdown()
    del restart_gates["r1"]
    before = {s.context.span_id for s in otel.finished()}
    assert otel.metric("edda.workflow.started") == 1

    second = make_app(sqlite_url, hooks=otel.hooks(enable_metrics=True))
    await second.initialize()
    assert await second.wait_result("otel-r1", timeout=10) == ["one", "two"]
    assert restart_runs == {"first:r1": 1, "held:r1": 2}
    caller.end()

    runs = otel.named("workflow:otel_restart")
    assert len(runs) == 2
    (interrupted,) = [s for s in runs if s.context.span_id in before]
    (resumed,) = [s for s in runs if s.context.span_id not in before]
    assert dict(interrupted.attributes or {})["edda.workflow.interrupted"] is True
    assert dict(resumed.attributes or {})["edda.workflow.resumed"] is True
    for run in (interrupted, resumed):  # both continue the trace stored with the input
        assert _parent_of(run) == caller.get_span_context().span_id
        assert run.context.trace_id == caller.get_span_context().trace_id
    assert len(otel.named("activity:otel_first")) == 1, "the replayed activity made no span"
    first_span = otel.one("activity:otel_first")
    assert _parent_of(first_span) == interrupted.context.span_id
    helds = otel.named("activity:otel_held")
    assert len(helds) == 2
    abandoned = next(s for s in helds if s.context.span_id in before)
    done = next(s for s in helds if s.context.span_id not in before)
    assert abandoned.status.status_code is StatusCode.ERROR
    assert _parent_of(done) == resumed.context.span_id
    assert done.status.status_code is StatusCode.OK
    assert resumed.status.status_code is StatusCode.OK
    # The resumed run counts a replay, one execution and its end, but no second start.
    assert otel.metric("edda.activity.cache_hit", **{"edda.activity.name": "otel_first"}) == 1
    assert otel.metric("edda.activity.executed", **{"edda.activity.name": "otel_held"}) == 1
    assert otel.metric("edda.workflow.started") == 1
    assert otel.metric("edda.workflow.completed") == 1


# -- the outbox carries the trace to the receiver ----------------------------------------

@activity
async def otel_announce(ctx: WorkflowContext, order_id: str) -> str:
    return await send_event_transactional(ctx, "otel_announced", "/orders",
                                          {"order_id": order_id})


@workflow
async def otel_announces(ctx: WorkflowContext, order_id: str) -> str:
    return await otel_announce(ctx, order_id)


@workflow(event_handler=True)
async def otel_announced(ctx: WorkflowContext, order_id: str) -> str:
    return order_id


async def test_the_outbox_sends_the_activity_traceparent_and_the_receiver_continues_it(
        db_url: str, make_app: MakeApp, otel: Otel) -> None:
    sink = Sink()
    async with serve(sink) as broker:
        app = make_app(db_url, hooks=otel.hooks(), outbox_enabled=True, broker_url=broker)
        await app.initialize()
        iid = await otel_announces.start(order_id="o-9")
        event_id = (await finished(app, iid))["output_data"]["result"]
        await wait_until(lambda: event_id in sink.events(), "the event to reach the broker")
    announce = otel.one("activity:otel_announce")
    event = sink.events()[event_id]
    assert _ids(event["traceparent"]) == (announce.context.trace_id, announce.context.span_id)
    assert event["data"] == {"order_id": "o-9"}

    # The receiver (this app again, over HTTP) continues the sender's trace.
    async with serve(app) as base, httpx.AsyncClient() as client:
        assert (await client.post(base, json=event, headers=CE)).status_code == 202
        found = (await app.find_instances(workflow_name="otel_announced"))["instances"]
        assert len(found) == 1
        await finished(app, found[0]["instance_id"])
    received = otel.one("workflow:otel_announced")
    assert _parent_of(received) == announce.context.span_id
    assert received.context.trace_id == announce.context.trace_id


def _ids(traceparent: str) -> tuple[int, int]:
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16)


@activity
async def otel_notify(ctx: WorkflowContext, order_id: str) -> None:
    await send_event("otel_notified", "/orders", {"order_id": order_id})


@workflow
async def otel_notifies(ctx: WorkflowContext, order_id: str) -> None:
    await otel_notify(ctx, order_id)


@workflow(event_handler=True)
async def otel_notified(ctx: WorkflowContext, order_id: str) -> str:
    return order_id


async def test_send_event_in_an_activity_carries_its_trace_and_makes_a_send_span(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks())
    await app.initialize()
    await finished(app, await otel_notifies.start(order_id="n-1"))
    found = (await app.find_instances(workflow_name="otel_notified"))["instances"]
    assert len(found) == 1
    inst = await finished(app, found[0]["instance_id"])
    notify = otel.one("activity:otel_notify")
    carried = inst["input_data"]["_trace_context"]["traceparent"]
    assert _ids(carried) == (notify.context.trace_id, notify.context.span_id)
    sent = otel.one("event:send:otel_notified")
    assert _parent_of(sent) == notify.context.span_id
    assert dict(sent.attributes or {}) == {"edda.event.type": "otel_notified",
                                           "edda.event.source": "/orders"}
    received = otel.one("workflow:otel_notified")
    assert _parent_of(received) == notify.context.span_id


# -- metrics ------------------------------------------------------------------------------

async def test_metrics_count_workflows_and_activities_and_time_them(
        sqlite_url: str, make_app: MakeApp, otel: Otel) -> None:
    app = make_app(sqlite_url, hooks=otel.hooks(enable_metrics=True))
    await app.initialize()
    await finished(app, await otel_order.start(key="m1"))
    with pytest.raises(Exception, match="card declined"):
        await otel_saga.start(item="desk")
    wf = {"edda.workflow.name": "otel_order"}
    saga = {"edda.workflow.name": "otel_saga"}
    assert otel.metric("edda.workflow.started", **wf) == 1
    assert otel.metric("edda.workflow.started", **saga) == 1
    assert otel.metric("edda.workflow.completed", **wf) == 1
    assert otel.metric("edda.workflow.completed", **saga) == 0
    assert otel.metric("edda.workflow.failed", **saga) == 1
    assert otel.metric("edda.workflow.failed", **wf) == 0
    # otel_flaky, otel_step, otel_reserve completed; otel_charge failed.
    assert otel.metric("edda.activity.executed") == 4
    assert otel.metric("edda.activity.executed", **{"edda.activity.status": "failed",
                                                    "edda.activity.name": "otel_charge"}) == 1
    assert otel.metric("edda.activity.cache_hit") == 0
    assert otel.metric("edda.workflow.duration") == 2
    assert otel.metric("edda.workflow.duration", **{"edda.workflow.status": "failed"}) == 1
    assert otel.metric("edda.activity.duration") == 4
    durations = _histogram_sums(otel, "edda.workflow.duration")
    assert all(0 < seconds < 10 for seconds in durations), durations


def _histogram_sums(otel: Otel, name: str) -> list[float]:
    data = otel.reader.get_metrics_data()
    assert data is not None
    return [point.sum for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name
            for point in metric.data.data_points if isinstance(point, HistogramDataPoint)]


# -- OTLP export, propagation helpers, and the install hint ------------------------------

@dataclass
class Collector:
    """An OTLP/http receiver: keeps the span names of every trace export."""

    paths: list[str]
    names: list[str]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        self.paths.append(scope["path"])
        if scope["path"] == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            self.names.extend(span.name for resource in request.resource_spans
                              for scope_spans in resource.scope_spans
                              for span in scope_spans.spans)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-protobuf")]})
        await send({"type": "http.response.body", "body": b""})


async def test_otlp_endpoint_exports_spans_over_http(sqlite_url: str, make_app: MakeApp) -> None:
    collector = Collector([], [])
    async with serve(collector) as endpoint:
        hooks = OpenTelemetryHooks(service_name="shop", otlp_endpoint=endpoint)
        app = make_app(sqlite_url, hooks=hooks)
        await app.initialize()
        await finished(app, await otel_order.start(key="x1"))
        await app.shutdown()
        await anyio.to_thread.run_sync(hooks.shutdown)  # flushes: the collector must answer
    assert set(collector.paths) == {"/v1/traces"}
    assert sorted(collector.names) == ["activity:otel_flaky", "activity:otel_step",
                                       "workflow:otel_order"]


def test_trace_context_helpers(otel: Otel) -> None:
    span = otel.tracer().start_span("parent")
    carrier = _carrier(span, tracestate="k=v")
    for data in ({"_trace_context": carrier}, {**carrier, "x": 1}):
        context = extract_trace_context(data)
        assert context is not None
        found = trace.get_current_span(context).get_span_context()
        assert (found.trace_id, found.span_id) == (span.get_span_context().trace_id,
                                                   span.get_span_context().span_id)
        assert found.trace_state.get("k") == "v"
    assert extract_trace_context({"x": 1}) is None
    assert extract_trace_context({"traceparent": "not-a-traceparent"}) is None
    hooks = otel.hooks()
    assert hooks.get_trace_context("unknown") == {}
    assert inject_trace_context(hooks, "unknown", {"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="otlp_endpoint"):
        OpenTelemetryHooks(otlp_endpoint="localhost:4318")
    # Every workflow takes a trace context with its input, and keeps it from the function.
    stored = otel_child.prepare_input({"order_id": "a", "_trace_context": carrier})
    assert stored == {"order_id": "a", "_trace_context": carrier}
    assert otel_child.build_arguments(stored) == {"order_id": "a"}
    with pytest.raises(TypeError, match="_trace_context must be a dict of strings"):
        otel_child.prepare_input({"order_id": "a", "_trace_context": "00-abc"})
    span.end()


def test_without_opentelemetry_the_hooks_say_how_to_install_it() -> None:
    script = ("import sys; sys.modules['opentelemetry'] = None\n"
              "from edda.integrations.opentelemetry import OpenTelemetryHooks\n"
              "OpenTelemetryHooks()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert ("ImportError: edda.integrations.opentelemetry needs OpenTelemetry: "
            "pip install '/path/to/edda-actors[otel]'") in done.stderr
