"""LLM calls as activities: `call`, `call_with_messages` and `durable_call`.

Each LLM call is one activity: its journaled result is the `DurableResponse`
as a dict (plus ``structured_output`` with a response model), so a replay
never calls the model again. What cannot be journaled never enters the
activity's recorded arguments: tools are recorded by name and response models
by their import path, while the objects themselves reach the running attempt
bound to the call (a context variable set by the awaiting task), or, for
`durable_call`, in the activity's closure.

Errors that a retry cannot fix (authentication, a bad request, an unknown
model, a missing provider or API key) fail the call at once as a
`TerminalError` that names Mirascope's error (``error_type``, ``status_code``);
rate limits, server errors and timeouts are retried by the activity's retry
policy.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import anyio.to_thread
from mirascope import llm

from edda.integrations.mirascope.messages import check_message_dicts, to_messages
from edda.integrations.mirascope.response import DurableResponse, provider_of
from edda.integrations.mirascope.tools import normalize_tools, tool_names
from edda.runtime.activity import Activity
from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.errors import TerminalError
from edda.runtime.serialization import NotSerializableError, to_jsonable

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from edda.runtime.retry import RetryPolicy

P = ParamSpec("P")
V = TypeVar("V")

_PARAMS = frozenset(llm.Params.__optional_keys__ | llm.Params.__required_keys__)
#: Mirascope errors that the same request would meet again.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    llm.AuthenticationError, llm.PermissionError, llm.BadRequestError, llm.NotFoundError,
    llm.MissingAPIKeyError, llm.NoRegisteredProviderError, llm.FeatureNotSupportedError,
)


@dataclass
class LLMRequest:
    """What one LLM call sends: the objects its recorded arguments only name."""

    model: str
    messages: list[llm.Message]
    tools: list[Any]
    format: Any
    params: dict[str, Any]


_request: contextvars.ContextVar[LLMRequest] = contextvars.ContextVar("edda_mirascope_request")


def check_model(model: object) -> str:
    """``model`` if it is a ``"provider/model-name"`` id.

    Raises:
        TypeError, ValueError: Otherwise.
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be a string like 'openai/gpt-4o-mini', got {model!r}")
    if "/" not in model:
        raise ValueError(f"model must look like 'provider/model-name' (e.g. 'openai/gpt-4o-mini'), "
                         f"got {model!r}")
    return model


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` if every key is a Mirascope call parameter (``llm.Params``).

    Raises:
        TypeError: Naming the first unknown parameter.
    """
    for key in params:
        if key not in _PARAMS:
            raise TypeError(f"unknown LLM call parameter {key!r}; Mirascope takes "
                            f"{', '.join(sorted(_PARAMS))}")
    return params


def check_format(response_model: Any, json_mode: bool = False) -> Any:
    """The Mirascope format for ``response_model`` (JSON mode if asked), or None.

    Raises:
        ValueError: For ``json_mode`` without a response model.
    """
    if response_model is None:
        if json_mode:
            raise ValueError("json_mode=True needs a response_model to parse the JSON into")
        return None
    if json_mode:
        return llm.format(response_model, mode="json")
    return response_model


def describe_format(response_model: Any) -> str | None:
    """How a response model is recorded: its import path (or its repr)."""
    if response_model is None:
        return None
    formattable = getattr(response_model, "formattable", response_model)
    if isinstance(formattable, type):
        return f"{formattable.__module__}:{formattable.__qualname__}"
    return repr(formattable)


def result_of(response: Any, model: str, structured: bool) -> dict[str, Any]:
    """The journaled result of an LLM call.

    Raises:
        TerminalError: If the structured output has no JSON form.
    """
    result = DurableResponse.from_mirascope(response, provider_of(model)).to_dict()
    if structured:
        parsed = response.parse()
        try:
            result["structured_output"] = to_jsonable(parsed, what="structured output")
        except NotSerializableError as exc:
            raise TerminalError(str(exc)) from exc
    return result


def refused(exc: Exception, model: str) -> TerminalError:
    """The error a permanent provider error is journaled as.

    Mirascope's error holds the SDK's exception and response, which the journal
    cannot store; the `TerminalError` carries what they say instead, as the
    attributes ``error_type`` (Mirascope's class name) and ``status_code``.
    """
    error = TerminalError(f"the {provider_of(model)} provider refused the call to {model}: "
                          f"{type(exc).__name__}: {exc}")
    error.error_type = type(exc).__name__  # type: ignore[attr-defined]
    status = getattr(exc, "status_code", None)
    error.status_code = status if isinstance(status, int) else None  # type: ignore[attr-defined]
    return error


async def complete(request: LLMRequest) -> dict[str, Any]:
    """Call the model once; the journaled result."""
    model = llm.Model(request.model, **request.params)
    try:
        response = await model.call_async(request.messages, tools=request.tools or None,
                                          format=request.format)
    except PERMANENT_ERRORS as exc:
        raise refused(exc, request.model) from None
    return result_of(response, request.model, request.format is not None)


def request_activity(name: str, retry_policy: RetryPolicy | None = None) -> Activity[..., Any]:
    """An activity that runs the `LLMRequest` bound to its call (see `invoke`)."""

    async def run(ctx: WorkflowContext, *recorded: Any, **named: Any) -> dict[str, Any]:
        return await complete(_request.get())

    run.__name__ = run.__qualname__ = name
    return Activity(run, retry_policy=retry_policy)


def invoke(activity: Activity[..., Any], ctx: WorkflowContext, request: LLMRequest,
           recorded: dict[str, Any], activity_id: str | None
           ) -> Coroutine[Any, Any, dict[str, Any]]:
    """Call ``activity`` with ``recorded`` as its journaled arguments and ``request``
    bound to it. The position is taken now, at the call, as for any activity."""
    return bind(activity(ctx, activity_id=activity_id, **recorded), _request, request)


async def bind(call: Coroutine[Any, Any, V], var: contextvars.ContextVar[Any], value: Any) -> V:
    """Await ``call`` with ``var`` set to ``value`` in the awaiting task (so calls
    gathered together each see their own)."""
    token = var.set(value)
    try:
        return await call
    finally:
        var.reset(token)


def recorded_args(**values: Any) -> dict[str, Any]:
    """The arguments an LLM activity records: those given, tools by name."""
    return {key: value for key, value in values.items() if value not in (None, [], {})}


_call = request_activity("call")
_call_with_messages = request_activity("call_with_messages")


def call(
    ctx: WorkflowContext,
    *,
    model: str,
    prompt: str,
    system: str | None = None,
    tools: list[Any] | None = None,
    response_model: Any = None,
    activity_id: str | None = None,
    **call_params: Any,
) -> Coroutine[Any, Any, dict[str, Any]]:
    """Ask ``model`` once, as an activity (position ``"call:N"``); the response as a dict.

    Args:
        ctx: The workflow's context.
        model: ``"provider/model-name"``.
        prompt: The user message.
        system: A system message to put first.
        tools: Tools the model may ask for (``@llm.tool`` or functions); their
            calls come back in ``tool_calls``, unexecuted. Recorded by name.
        response_model: A pydantic model (or type) to parse the answer into;
            the result then has ``structured_output`` (its JSON data).
        activity_id: An explicit position.
        **call_params: Mirascope call parameters (``temperature``, ``max_tokens``, ...).

    Raises:
        TypeError, ValueError: For a bad model id, parameter or tool (at the call).
        TerminalError: If the provider refused the request (its cause says why).
        edda.RetryExhaustedError: If the call kept failing (rate limits, server
            errors) for as long as the retry policy allows.
    """
    require_context(ctx, "call")
    check_model(model)
    params = check_params(call_params)
    tool_list = normalize_tools(tools, context=False)
    fmt = check_format(response_model)
    messages: list[Any] = [] if system is None else [llm.messages.system(system)]
    messages.append(llm.messages.user(prompt))
    request = LLMRequest(model=model, messages=messages, tools=tool_list, format=fmt,
                         params=params)
    recorded = {"model": model, "prompt": prompt, **recorded_args(
        system=system, tools=tool_names(tool_list),
        response_model=describe_format(response_model)), **params}
    return invoke(_call, ctx, request, recorded, activity_id)


def call_with_messages(
    ctx: WorkflowContext,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[Any] | None = None,
    response_model: Any = None,
    activity_id: str | None = None,
    **call_params: Any,
) -> Coroutine[Any, Any, dict[str, Any]]:
    """Ask ``model`` once with a whole conversation, as an activity
    (position ``"call_with_messages:N"``); the response as a dict.

    ``messages`` are ``{"role", "content"}`` dicts; an assistant message may
    carry ``tool_calls`` and a tool's answer is ``{"role": "tool",
    "tool_call_id", "name", "content"}``, so a conversation with tool calls
    can be continued. The messages are recorded as the activity's arguments.

    Raises:
        TypeError, ValueError: For bad messages, model id, parameter or tool.
        TerminalError: If the provider refused the request (its cause says why).
        edda.RetryExhaustedError: If the call kept failing for as long as the
            retry policy allows.
    """
    require_context(ctx, "call_with_messages")
    check_model(model)
    params = check_params(call_params)
    tool_list = normalize_tools(tools, context=False)
    fmt = check_format(response_model)
    request = LLMRequest(model=model, messages=to_messages(check_message_dicts(messages)),
                         tools=tool_list, format=fmt, params=params)
    recorded = {"model": model, "messages": messages, **recorded_args(
        tools=tool_names(tool_list), response_model=describe_format(response_model)), **params}
    return invoke(_call_with_messages, ctx, request, recorded, activity_id)


def durable_call(
    model: str,
    *,
    tools: list[Any] | None = None,
    response_model: Any = None,
    json_mode: bool = False,
    retry_policy: RetryPolicy | None = None,
    **call_params: Any,
) -> Callable[[Callable[P, Any]], Activity[P, dict[str, Any]]]:
    """Make a Mirascope prompt function a durable LLM call: an activity taking
    ``(ctx, *args, **kwargs)`` and returning the response as a dict.

    The prompt function is Mirascope's (``llm.call(model, ...)(func)``): it
    returns the prompt (a string, content or messages) for its arguments. Its
    arguments are the activity's recorded arguments; tools and the response
    model stay in the activity, never in the journal.

    Args:
        model: ``"provider/model-name"``.
        tools: Tools the model may ask for; their calls come back in
            ``tool_calls``, unexecuted.
        response_model: A pydantic model (or type) to parse the answer into;
            the result then has ``structured_output``.
        json_mode: Ask for the response model in JSON mode.
        retry_policy: The activity's retry policy (default: the app's).
        **call_params: Mirascope call parameters (``temperature``, ...).

    Raises:
        TypeError, ValueError: For a bad model id, parameter or tool, or a
            prompt function that takes an ``llm.Context``.
    """
    check_model(model)
    params = check_params(call_params)
    tool_list = normalize_tools(tools, context=False)
    fmt = check_format(response_model, json_mode)

    def decorate(func: Callable[P, Any]) -> Activity[P, dict[str, Any]]:
        if not callable(func):
            raise TypeError(f"@durable_call needs a prompt function, got {func!r}")
        prompt_call: Any = llm.call(model, tools=tool_list or None, format=fmt,
                                    **params)(func)
        if isinstance(prompt_call, llm.ContextCall | llm.AsyncContextCall):
            raise TypeError(f"@durable_call prompt {func.__name__!r} takes an llm.Context; a "
                            "durable call's first argument is the WorkflowContext. Use "
                            "DurableAgent for calls with dependencies")
        is_async = isinstance(prompt_call, llm.AsyncCall)

        async def run(ctx: WorkflowContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                if is_async:
                    response = await prompt_call(*args, **kwargs)
                else:
                    response = await anyio.to_thread.run_sync(
                        functools.partial(prompt_call, *args, **kwargs))
            except PERMANENT_ERRORS as exc:
                raise refused(exc, model) from None
            return result_of(response, model, fmt is not None)

        run.__name__ = func.__name__
        run.__qualname__ = getattr(func, "__qualname__", func.__name__)
        run.__module__ = func.__module__
        run.__doc__ = func.__doc__
        wrapper: Activity[P, dict[str, Any]] = Activity(run, retry_policy=retry_policy)  # type: ignore[arg-type]
        wrapper._mirascope_func = prompt_call  # type: ignore[attr-defined]
        wrapper._provider = provider_of(model)  # type: ignore[attr-defined]
        wrapper._model = model  # type: ignore[attr-defined]
        wrapper._tools = tool_list  # type: ignore[attr-defined]
        wrapper._response_model = response_model  # type: ignore[attr-defined]
        return wrapper

    return decorate
