"""`DurableWorkflowRunner`: a LlamaIndex workflow run inside an Edda workflow.

The runner dispatches the workflow's events itself, one step at a time, from a
queue the journal can rebuild:

- every step call is an Edda activity named ``"{WorkflowClass}.{step}"``; its
  journaled result holds the events the step sent and returned, the store keys
  it changed, and what it added to or emptied from its ``collect_events`` buffers;
- the workflow body only decodes those results, so a replay rebuilds the queue,
  the store and the buffers exactly and re-runs no finished step;
- `DurableSleepEvent` and `DurableWaitEvent` become `edda.sleep` and
  `edda.wait_event` in the body, followed by a `ResumeEvent`;
- the first `StopEvent` ends the run.

An event goes to every step that takes it, in step-name order; events are
handled first in, first out. Each step sees what the steps before it wrote.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from workflows.context.state_store import InMemoryStateStore, infer_state_type
from workflows.events import Event, StartEvent, StopEvent
from workflows.resource import ResourceManager
from workflows.workflow import Workflow

from edda.integrations.llamaindex.codec import EventCodec, decode_state, encode_state
from edda.integrations.llamaindex.context import StepContext
from edda.integrations.llamaindex.errors import WorkflowExecutionError
from edda.integrations.llamaindex.events import DurableSleepEvent, DurableWaitEvent, ResumeEvent
from edda.integrations.llamaindex.steps import StepRetryPolicy, StepSpec, read_steps
from edda.runtime.activity import Activity
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.errors import (
    NonDeterminismError,
    RetryExhaustedError,
    TerminalError,
    WorkflowCancelledException,
)
from edda.runtime.events import wait_event
from edda.runtime.serialization import NotSerializableError
from edda.runtime.timers import sleep

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

    from edda.runtime.retry import RetryPolicy


@dataclass
class _Run:
    """One ``runner.run()``: the journal's view of the store and the buffers."""

    state: dict[str, Any]
    #: step -> buffer id -> encoded events
    buffers: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    #: The event the step being called receives.
    event: Event | None = None


_current: contextvars.ContextVar[_Run] = contextvars.ContextVar("edda_llamaindex_run")


class DurableWorkflowRunner:
    """Runs a LlamaIndex `Workflow` durably inside an Edda ``@workflow``.

    Args:
        workflow_class: The LlamaIndex `Workflow` subclass (created once with no
            arguments), or a workflow instance built with its own arguments.
        retry_policy: The Edda retry policy of steps that have no LlamaIndex
            ``retry_policy`` of their own (default: the app's).
        on_stream_event: Called with each event a step passes to
            ``ctx.write_event_to_stream`` (live only, never on replay).

    Raises:
        TypeError: If ``workflow_class`` is not a LlamaIndex workflow.
        ValueError: If a step uses a feature the runner does not support.
    """

    def __init__(
        self,
        workflow_class: type[Workflow] | Workflow,
        *,
        retry_policy: RetryPolicy | None = None,
        on_stream_event: Callable[[Event], object] | None = None,
    ) -> None:
        if isinstance(workflow_class, Workflow):
            self.workflow = workflow_class
        elif isinstance(workflow_class, type) and issubclass(workflow_class, Workflow):
            self.workflow = workflow_class()
        else:
            raise TypeError(f"Expected a Workflow subclass, got {workflow_class!r}")
        self.workflow_class = type(self.workflow)
        self._on_stream_event = on_stream_event
        self._steps = read_steps(self.workflow)
        self._state_type: type[BaseModel] = infer_state_type(self.workflow)
        self._initial_state = encode_state(self._state_type(), "(initial state)")
        self._codec = EventCodec([
            *self.workflow.events, self.workflow.start_event_class, StartEvent, StopEvent,
            DurableSleepEvent, DurableWaitEvent, ResumeEvent,
        ])
        self._resources = ResourceManager()
        self._activities = {name: self._activity(spec, retry_policy)
                            for name, spec in self._steps.items()}

    @property
    def step_names(self) -> list[str]:
        """The workflow's steps, in the order an event's takers run."""
        return list(self._steps)

    async def run(self, ctx: WorkflowContext, **kwargs: Any) -> Any:
        """Run the workflow from a start event built from ``kwargs``; its result.

        ``start_event=`` passes a ready-made start event instead. The result is
        a `StopEvent`'s ``result``, or the event itself for a `StopEvent` subclass
        (as LlamaIndex returns it).

        Raises:
            WorkflowExecutionError: If a step failed for good, an event has no
                step to take it, or the events ran out before a `StopEvent`.
            edda.EventTimeoutError: If a `DurableWaitEvent` timed out.
        """
        require_context(ctx, "DurableWorkflowRunner.run")
        run = _Run(state=self._initial_state)
        queue: deque[tuple[Event, str | None]] = deque([(self._start_event(kwargs), None)])
        while queue:
            event, target = queue.popleft()
            if isinstance(event, StopEvent):
                return event.result if type(event) is StopEvent else event
            if isinstance(event, DurableSleepEvent):
                await sleep(ctx, event.seconds)
                queue.append((ResumeEvent(data=event.resume_data or {}), None))
                continue
            if isinstance(event, DurableWaitEvent):
                received = await wait_event(ctx, event.event_type,
                                            timeout_seconds=event.timeout_seconds)
                queue.append((ResumeEvent(data=received.data), None))
                continue
            takers = [target] if target is not None else [
                name for name, spec in self._steps.items() if spec.takes(event)]
            if not takers:
                raise WorkflowExecutionError(
                    f"No step of {self.workflow_class.__qualname__} takes "
                    f"{type(event).__qualname__}; steps: {', '.join(self._steps)}")
            for name in takers:
                emitted = await self._call(ctx, run, name, event)
                stop = next((e for e, _ in emitted if isinstance(e, StopEvent)), None)
                if stop is not None:
                    queue = deque([(stop, None)])
                    break
                queue.extend(emitted)
        raise WorkflowExecutionError(
            f"{self.workflow_class.__qualname__} ran out of events without a StopEvent: the "
            "last steps returned None and sent nothing (is a ctx.collect_events() still "
            "missing an event?)")

    def _start_event(self, kwargs: dict[str, Any]) -> Event:
        event = kwargs.pop("start_event", None)
        if event is None:
            try:
                event = self.workflow.start_event_class(**kwargs)
            except Exception as exc:
                raise WorkflowExecutionError(
                    f"{self.workflow.start_event_class.__qualname__} of "
                    f"{self.workflow_class.__qualname__} does not take {sorted(kwargs)}: "
                    f"{exc}") from exc
        elif kwargs or not isinstance(event, StartEvent):
            raise TypeError("pass either start_event=<a StartEvent> or keyword arguments, "
                            "not both")
        # What the first step gets is exactly what a replay would rebuild.
        return self._codec.decode(self._codec.encode(event, f"start event {type(event).__name__}"))

    async def _call(self, ctx: WorkflowContext, run: _Run, name: str,
                    event: Event) -> list[tuple[Event, str | None]]:
        """Call step ``name`` with ``event`` as an activity; apply and return what it emitted."""
        run.event = event
        token = _current.set(run)
        try:
            outcome: dict[str, Any] = await self._activities[name](ctx, type(event).__name__)
        except (WorkflowCancelledException, NonDeterminismError):
            raise
        except Exception as exc:
            raise WorkflowExecutionError(f"Step {name!r} failed: {_explain(exc)}", name) from exc
        finally:
            _current.reset(token)
        if "state" in outcome:
            run.state = _changed(run.state, outcome["state"])
        if "buffers" in outcome:
            buffers = run.buffers.setdefault(name, {})
            for change in outcome["buffers"]:
                if "event" in change:
                    buffers.setdefault(change["key"], []).append(change["event"])
                else:
                    buffers.pop(change["key"], None)
        return [(self._codec.decode(sent["event"]), sent.get("step"))
                for sent in outcome["events"]]

    def _activity(self, spec: StepSpec, retry_policy: RetryPolicy | None) -> Activity[..., Any]:
        runner = self

        async def call_step(ctx: WorkflowContext, trigger: str) -> Any:
            return await runner._execute(ctx, spec)

        call_step.__name__ = call_step.__qualname__ = (
            f"{self.workflow_class.__name__}.{spec.name}")
        policy = retry_policy if spec.retry_policy is None else StepRetryPolicy(spec.retry_policy)
        return Activity(call_step, retry_policy=policy)

    async def _execute(self, ctx: WorkflowContext, spec: StepSpec) -> dict[str, Any]:
        """One attempt of a step, over the state the journal holds; its result to journal."""
        run = _current.get()
        assert run.event is not None
        codec = self._codec
        store = InMemoryStateStore(decode_state(run.state, self._state_type))
        buffers = {key: [codec.decode(e) for e in held]
                   for key, held in run.buffers.get(spec.name, {}).items()}
        step_ctx = StepContext(step=spec, store=store, edda=ctx, steps=self._steps,
                               buffers=buffers, on_stream_event=self._on_stream_event)
        kwargs: dict[str, Any] = {spec.event_param: run.event}
        if spec.context_param is not None:
            kwargs[spec.context_param] = step_ctx
        for resource in spec.resources:
            kwargs[resource.name] = await self._resources.get(resource.resource)
        if inspect.iscoroutinefunction(spec.func):
            returned = await spec.func(**kwargs)
        else:
            returned = await anyio.to_thread.run_sync(functools.partial(spec.func, **kwargs))
        sent = [(e, target, "sent" if target is None else f"sent to step {target!r}")
                for e, target in step_ctx.sent]
        emitted = [*sent, *((e, None, "returned") for e in _returned_events(spec.name, returned))]
        try:
            outcome: dict[str, Any] = {"events": [
                _sent(codec.encode(e, f"{type(e).__qualname__} {how} by step {spec.name!r}"),
                      target)
                for e, target, how in emitted]}
            state = encode_state(await store.get_state(), spec.name)
            if state != run.state:
                outcome["state"] = {
                    "set": {k: v for k, v in state.items() if run.state.get(k, _GONE) != v},
                    "unset": [k for k in run.state if k not in state]}
            if step_ctx.buffer_changes:
                outcome["buffers"] = [
                    {"key": key} if event is None else {
                        "key": key,
                        "event": codec.encode(event, f"event collected by step {spec.name!r}")}
                    for key, event in step_ctx.buffer_changes]
        except NotSerializableError as exc:
            raise TerminalError(str(exc)) from exc  # the same output would fail again
        return outcome


_GONE = object()


def _changed(state: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``state`` with a step's store change applied (a new dict: states are shared)."""
    updated = {**state, **change["set"]}
    for key in change["unset"]:
        updated.pop(key, None)
    return updated


def _sent(event: dict[str, Any], target: str | None) -> dict[str, Any]:
    return {"event": event} if target is None else {"event": event, "step": target}


def _returned_events(step: str, returned: Any) -> list[Event]:
    if returned is None:
        return []
    if isinstance(returned, Event):
        return [returned]
    if isinstance(returned, list | tuple) and all(isinstance(e, Event) for e in returned):
        return list(returned)
    raise TerminalError(f"step {step!r} returned a {type(returned).__qualname__}; a step returns "
                        "an Event, a list of Events or None")


def _explain(exc: Exception) -> str:
    cause = exc.__cause__
    if isinstance(exc, RetryExhaustedError) and cause is not None:
        return f"{exc} (last error: {type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}"
