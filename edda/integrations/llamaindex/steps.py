"""The steps of a LlamaIndex workflow, read once from LlamaIndex's own step metadata.

`read_steps` turns every ``@step`` of a workflow into a `StepSpec`: which events
it takes, which parameter gets the event and which the context, the resources
it asks for and its retry policy. Features the durable runner cannot keep are
refused here, when the runner is built, with an error that says what to do.
"""

from __future__ import annotations

import contextvars
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edda.runtime.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

    from workflows.events import Event
    from workflows.resource import ResourceDefinition
    from workflows.workflow import Workflow


@dataclass(frozen=True)
class StepSpec:
    """One step of the workflow, as the runner calls it.

    Attributes:
        name: The step's name (its method or function name).
        func: The bound method or free function.
        accepts: The event classes it takes.
        subclasses: Whether subclasses of those match too (``accept_event_subclasses``).
        event_param: The parameter that receives the event.
        context_param: The parameter that receives the context, if any: the one
            annotated ``Context``, or else the one parameter left unannotated
            (``async def s(self, ctx, ev: StartEvent)``, as Edda's examples write).
        resources: ``Annotated[T, Resource(...)]`` parameters.
        retry_policy: The step's LlamaIndex retry policy, if it has one.
    """

    name: str
    func: Callable[..., Any]
    accepts: tuple[type[Event], ...]
    subclasses: bool
    event_param: str
    context_param: str | None
    resources: tuple[ResourceDefinition, ...]
    retry_policy: Any

    def takes(self, event: Event) -> bool:
        """Whether ``event`` is routed to this step (LlamaIndex's matching rule)."""
        if self.subclasses:
            return isinstance(event, self.accepts)
        return type(event) in self.accepts


def read_steps(workflow: Workflow) -> dict[str, StepSpec]:
    """The workflow's steps by name, in name order.

    Raises:
        ValueError: For a step that uses a LlamaIndex feature the durable runner
            does not support, naming the step and the alternative.
    """
    steps: dict[str, StepSpec] = {}
    for name, func in sorted(workflow._get_steps().items()):
        config = func._step_config
        where = f"step {name!r} of {type(workflow).__qualname__}"
        if getattr(config, "role", "step") != "step":
            raise ValueError(
                f"{where} is a @catch_error handler, which the durable runner does not "
                "support: a failed step fails the run with WorkflowExecutionError, which the "
                "Edda workflow can catch around runner.run(), or compensate with @on_failure")
        if getattr(config, "collect_params", None) or getattr(config, "collection_param", None):
            raise ValueError(
                f"{where} collects several events through its parameters, which the durable "
                "runner does not support: take one event parameter (a union of the types) "
                "and gather them with ctx.collect_events(ev, [TypeA, TypeB])")
        resources = tuple(config.resources)
        steps[name] = StepSpec(
            name=name,
            func=func,
            accepts=tuple(config.accepted_events),
            subclasses=bool(getattr(config, "accept_event_subclasses", False)),
            event_param=config.event_name,
            context_param=config.context_parameter or _untyped_context(func, config.event_name,
                                                                        resources, where),
            resources=resources,
            retry_policy=config.retry_policy,
        )
    return steps


def _untyped_context(func: Callable[..., Any], event_param: str,
                     resources: tuple[ResourceDefinition, ...], where: str) -> str | None:
    """The one required parameter LlamaIndex does not fill, which gets the context."""
    known = {event_param, *(resource.name for resource in resources)}
    left = [p.name for p in inspect.signature(func).parameters.values()
            if p.name not in known and p.name not in ("self", "cls")
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if len(left) > 1:
        raise ValueError(f"{where} has parameters {', '.join(left)} the runner cannot fill: a "
                         "step takes its event, at most one context parameter and resources")
    return left[0] if left else None


_next_delay: contextvars.ContextVar[float] = contextvars.ContextVar("edda_llamaindex_delay")


class StepRetryPolicy(RetryPolicy):
    """An Edda retry policy that asks a LlamaIndex one (``@step(retry_policy=...)``).

    LlamaIndex's ``policy.next(elapsed, failures, error)`` returns the delay
    before the next attempt, or None to stop. `edda.TerminalError` still stops
    at once.
    """

    def __init__(self, policy: Any) -> None:
        super().__init__(max_attempts=None, max_duration=None)
        self.policy = policy

    def stop_reason(self, error: Exception, attempt: int, elapsed: float) -> str | None:
        if not self.is_retryable(error):
            return f"Error type {type(error).__name__} is not retryable"
        delay = self.policy.next(elapsed, attempt, error)
        if delay is None:
            return f"the step's retry policy gave up after {attempt} attempts"
        # Read back by calculate_delay for this same failure, in this same task.
        _next_delay.set(float(delay))
        return None

    def calculate_delay(self, attempt: int) -> float:
        return _next_delay.get()
