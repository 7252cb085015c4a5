"""Saga compensation: what undoes a completed step when the workflow fails or is cancelled.

A compensation is registered by a journal entry, so a replay never registers one
twice: ``@on_failure(comp)`` registers with the activity's own `ActivityCompleted`
(atomically with its result), ``register_compensation`` in the workflow body with
a `CompensationRegistered` entry. When the workflow fails or is cancelled, the
registered compensations run newest first; each outcome is journaled
(`CompensationDone`), so a crash while compensating resumes with the ones that
have not finished, and never runs a finished one again.

**Arguments of an** ``@on_failure`` **compensation.** It is called with the
workflow context and, by name, whichever of its parameters it can be given:
first the activity's own arguments (positional ones by the activity's parameter
names, defaults applied), then ``result`` (the activity's whole result), then
keys of a dict result (Edda's rule). A ``**kwargs`` compensation also receives
the activity's other arguments. If a required parameter cannot be found by name,
the compensation is called with the activity's arguments exactly as they were
passed.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

from edda.journal.entries import CompensationCall, CompensationRegistered
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.registry import DEFAULT
from edda.runtime.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from edda.runtime.serialization import restore, to_jsonable, type_hints

if TYPE_CHECKING:
    from collections.abc import Callable

F = TypeVar("F", bound="Callable[..., Any]")

__all__ = ["compensation", "on_failure", "register_compensation"]

def _register(func: Callable[..., Any]) -> str:
    if not callable(func):
        raise TypeError(f"a compensation must be a function, got {func!r}")
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"a compensation needs a __name__ to be found again, got {func!r}")
    known = DEFAULT.compensation(name)
    if known is not None and known is not func and _target(known) is not _target(func):
        raise ValueError(f"another compensation is already registered as {name!r}; "
                         "compensations are found by name, so give each its own")
    DEFAULT.add_compensation(name, func)
    return name


def _target(func: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind an `Activity` (or the function itself)."""
    inner = getattr(func, "func", None)
    return inner if getattr(func, "_is_activity", False) and callable(inner) else func


def compensation(func: F) -> F:
    """Register ``func`` as a compensation (found by name when it must run); returns it."""
    _register(func)
    return func


def on_failure(compensation_func: Callable[..., Any]) -> Callable[[F], F]:
    """Compensate an activity: if the workflow later fails or is cancelled,
    ``compensation_func`` undoes it. Put it under or over ``@activity``."""
    _register(compensation_func)

    def decorate(func: F) -> F:
        func._compensation_func = compensation_func  # type: ignore[attr-defined]
        func._has_compensation = True  # type: ignore[attr-defined]
        return func

    return decorate


def compensation_of(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """The ``@on_failure`` compensation of an activity function, if any."""
    return getattr(func, "_compensation_func", None)


# -- registering --------------------------------------------------------------------

def bind_for_activity(activity_func: Callable[..., Any], comp: Callable[..., Any],
                      args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                      name: str) -> CompensationCall:
    """The journaled call of an ``@on_failure`` compensation (see the module's rule).

    Raises:
        NotSerializableError: If an argument it would receive cannot be journaled.
    """
    what = f"arguments of compensation {name!r}"
    named = _named_arguments(activity_func, args, kwargs)
    chosen = None if named is None else _by_name(_target(comp), named, result)
    if chosen is None:
        return CompensationCall(name=name, args=to_jsonable(list(args), what=what),
                                kwargs=to_jsonable(dict(kwargs), what=what))
    return CompensationCall(name=name, kwargs=to_jsonable(chosen, what=what))


def _named_arguments(func: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> dict[str, Any] | None:
    try:
        signature = inspect.signature(func)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    params = list(signature.parameters.values())
    named: dict[str, Any] = {}
    for param in params[1:]:
        if param.name not in bound.arguments:
            continue
        value = bound.arguments[param.name]
        if param.kind is param.VAR_KEYWORD:
            named.update(value)
        elif param.kind is not param.VAR_POSITIONAL:
            named[param.name] = value
    return named


def _by_name(comp: Callable[..., Any], named: dict[str, Any], result: Any
             ) -> dict[str, Any] | None:
    try:
        params = list(inspect.signature(comp).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    chosen: dict[str, Any] = {}
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.VAR_KEYWORD:
            chosen.update({k: v for k, v in named.items() if k not in chosen})
            continue
        if param.kind is param.POSITIONAL_ONLY:
            return None
        if param.name in named:
            chosen[param.name] = named[param.name]
        elif param.name == "result":
            chosen["result"] = result
        elif isinstance(result, dict) and param.name in result:
            chosen[param.name] = result[param.name]
        elif param.default is param.empty:
            return None
    return chosen


async def register_compensation(ctx: WorkflowContext, compensation_func: Callable[..., Any],
                                *args: Any, activity_id: str | None = None,
                                **kwargs: Any) -> None:
    """Register a compensation from the workflow body (journaled: a replay does not
    register it again). It runs, newest first with the others, if the workflow fails
    or is cancelled, as ``compensation_func(ctx, *args, **kwargs)``.

    Raises:
        NotSerializableError: If an argument cannot be journaled.
    """
    require_context(ctx, "register_compensation")
    name = _register(compensation_func)
    position, call = ctx._reserve(name, activity_id)
    if ctx._recorded(position, call, f"register_compensation {name!r}") is not None:
        return
    run = ctx._run
    what = f"arguments of compensation {name!r}"
    entry = CompensationRegistered(
        position=position, call=call,
        compensation=CompensationCall(name=name, args=to_jsonable(list(args), what=what),
                                      kwargs=to_jsonable(kwargs, what=what)))
    # Known to the run from the moment it is queued: a body ending meanwhile (this in
    # a branch of a gather) compensates it, since it commits before the ending does.
    run.journal.submit(entry)
    run.compensations.append((position, entry.compensation))
    await run.journal.settled()


# -- running ------------------------------------------------------------------------

class CompensationNotFoundError(LookupError):
    """No compensation of that name is registered in this process."""


async def run_one(ctx: WorkflowContext, call: CompensationCall,
                  default_policy: RetryPolicy | None) -> int:
    """Run one compensation with retries; returns the attempts it took.

    Raises:
        Exception: The last attempt's error once its retry policy gives up.
    """
    func = ctx._run.registry.compensation(call.name)
    if func is None:
        raise CompensationNotFoundError(
            f"compensation {call.name!r} is not registered in this process; import the "
            "module that defines it (decorated with @compensation) before the app runs")
    target = _target(func)
    policy = getattr(func, "retry_policy", None) or default_policy or DEFAULT_RETRY_POLICY
    args, kwargs = _restored(target, call)
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            if inspect.iscoroutinefunction(target):
                await target(ctx, *args, **kwargs)
            else:
                await anyio.to_thread.run_sync(functools.partial(target, ctx, *args, **kwargs))
            return attempt
        except Exception as exc:
            if policy.stop_reason(exc, attempt, time.monotonic() - started) is not None:
                exc.add_note(f"compensation {call.name!r} gave up after {attempt} attempt(s)")
                exc.attempts = attempt  # type: ignore[attr-defined]
                raise
            await asyncio.sleep(policy.calculate_delay(attempt))


def _restored(func: Callable[..., Any], call: CompensationCall
              ) -> tuple[list[Any], dict[str, Any]]:
    """The journaled arguments, converted back to the types the function annotates."""
    hints = type_hints(func)
    try:
        params = [p.name for p in list(inspect.signature(func).parameters.values())[1:]]
    except (TypeError, ValueError):
        params = []
    args = [restore(value, hints.get(params[i])) if i < len(params) else value
            for i, value in enumerate(call.args)]
    kwargs = {key: restore(value, hints.get(key)) for key, value in call.kwargs.items()}
    return args, kwargs
