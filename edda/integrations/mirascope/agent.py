"""`DurableAgent`: a conversation with a model in which every turn is an activity.

A turn (one call to the model) is the activity ``_chat_activity``; in a tool
loop, every tool call the model asks for is the activity ``"tool.{name}"``,
whose journaled result is what the tool returned. The workflow body only reads
those results: it rebuilds the conversation (the model's tool calls and the
tools' answers) from them, so a replay neither asks the model again nor runs a
finished tool again, and a crash in the middle of a loop resumes at the turn or
tool that was running.

The prompt is built by ``build_prompt`` in the workflow body (it must be
deterministic, as workflow code is) and reaches the turn's activity bound to
the call, with the tools; the activity records the new message, the turn, the
tool names and the call parameters.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from mirascope import llm

from edda.integrations.mirascope.calls import (
    LLMRequest,
    bind,
    check_format,
    check_model,
    check_params,
    describe_format,
    invoke,
    recorded_args,
    request_activity,
)
from edda.integrations.mirascope.messages import assistant_dict, to_messages, tool_dict
from edda.integrations.mirascope.tools import (
    find_tool,
    normalize_tools,
    run_executor,
    run_tool,
    tool_names,
)
from edda.runtime.activity import Activity
from edda.runtime.context import WorkflowContext, require_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from edda.integrations.mirascope.deps import DurableDeps
    from edda.runtime.retry import RetryPolicy

T = TypeVar("T")


@dataclass
class _ToolCall:
    """What one tool activity runs: the tool (or executor) and the agent's deps."""

    tool: Any
    executor: Callable[..., Any] | None
    deps: Any


_tool_call: contextvars.ContextVar[_ToolCall] = contextvars.ContextVar("edda_mirascope_tool")
# Keyed by the policy's id (policies are mutable dataclasses); the policy is kept
# beside its activity, so the id is never reused while the entry lives.
_turns: dict[int, tuple[RetryPolicy | None, Activity[..., Any]]] = {}
_tools: dict[tuple[str, int], tuple[RetryPolicy | None, Activity[..., Any]]] = {}


class DurableAgent(Generic[T]):
    """A durable chat agent over Mirascope; subclass it and set ``model``.

    Class attributes:
        model: The model id (``"provider/model-name"``).
        response_model: A pydantic model (or type) every answer is parsed into,
            or None.
        retry_policy: The retry policy of turns and tool calls (None: the app's).

    Args:
        workflow_ctx: The context of the workflow the agent talks in.
    """

    model: ClassVar[str] = "anthropic/claude-sonnet-4-20250514"
    response_model: ClassVar[Any] = None
    retry_policy: ClassVar[RetryPolicy | None] = None

    def __init__(self, workflow_ctx: WorkflowContext) -> None:
        self.workflow_ctx = require_context(workflow_ctx, type(self).__name__)

    def get_tools(self) -> list[Any] | None:
        """The tools the model may call (``@llm.tool`` or functions); None for none.

        Context tools (``ctx: llm.Context[DurableDeps[...]]`` first) get the
        agent's deps.
        """
        return None

    def build_prompt(self, ctx: llm.Context[DurableDeps[T]], message: str) -> list[Any]:
        """The messages of a turn: by default the history, then ``message``.

        Runs in the workflow body, so it must be deterministic. Return message
        dicts, strings (user messages) or Mirascope messages.
        """
        return [*ctx.deps.history, {"role": "user", "content": message}]

    async def chat(self, deps: DurableDeps[T], message: str, **call_params: Any
                   ) -> dict[str, Any]:
        """One turn: send ``message`` (with the prompt around it); the answer as a dict.

        The message and the answer are appended to ``deps.history``. Tool calls
        the model asks for come back in ``tool_calls``, unexecuted.

        Raises:
            edda.TerminalError: If the provider refused the request.
            edda.RetryExhaustedError: If the call kept failing.
        """
        tools = normalize_tools(self.get_tools(), context=True)
        prompt = to_messages(self.build_prompt(llm.Context(deps=deps), message))
        result: dict[str, Any] = await self._turn(prompt, message, 1, tools,
                                                  check_params(call_params))
        deps.add_user_message(message)
        deps.add_assistant_message(result["content"])
        return result

    async def chat_with_tool_loop(
        self,
        deps: DurableDeps[T],
        message: str,
        tool_executor: Callable[[str, dict[str, Any]], Any] | None = None,
        max_iterations: int = 10,
        **call_params: Any,
    ) -> dict[str, Any]:
        """Talk until the model answers without asking for tools, running the tools
        it asks for in between; the last answer as a dict.

        Every tool call is an activity; its result (or its error's message) goes
        back to the model. The answer also has ``tool_results`` (every tool
        call's ``{"id", "name", "result", "error"}``, in order) and
        ``iterations`` (the number of turns).

        Args:
            deps: The agent's deps; the message and the final answer are
                appended to their history.
            message: The user's message.
            tool_executor: ``executor(name, args) -> result`` (sync or async) to
                run every tool call instead of the agent's tools.
            max_iterations: At most this many turns; if the model still asks for
                tools after the last one, that answer is returned as it is.
            **call_params: Mirascope call parameters.

        Raises:
            ValueError: If ``max_iterations`` is below 1.
            edda.TerminalError: If the provider refused a request.
            edda.RetryExhaustedError: If a call kept failing.
        """
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
        tools = normalize_tools(self.get_tools(), context=True)
        params = check_params(call_params)
        prompt = to_messages(self.build_prompt(llm.Context(deps=deps), message))
        exchange: list[dict[str, Any]] = []
        outputs: list[dict[str, Any]] = []
        turn = 0
        while True:
            turn += 1
            result = await self._turn(prompt + to_messages(exchange), message if turn == 1
                                      else None, turn, tools, params)
            calls = result.get("tool_calls") or []
            if not calls or turn >= max_iterations:
                break
            exchange.append(assistant_dict(result))
            for tool_call in calls:
                output = await self._run_tool(tool_call, tools, tool_executor, deps)
                outputs.append(output)
                exchange.append(tool_dict(output))
        deps.add_user_message(message)
        deps.add_assistant_message(result["content"])
        return {**result, "tool_results": outputs, "iterations": turn}

    def _turn(self, messages: list[llm.Message], message: str | None, turn: int,
              tools: list[Any], params: dict[str, Any]) -> Any:
        model = check_model(self.model)
        fmt = check_format(self.response_model)
        request = LLMRequest(model=model, messages=messages, tools=tools, format=fmt,
                             params=params)
        recorded = {"agent": type(self).__qualname__, "model": model, "turn": turn,
                    **recorded_args(message=message, tools=tool_names(tools),
                                    response_model=describe_format(self.response_model)),
                    **params}
        return invoke(_turn_activity(self.retry_policy), self.workflow_ctx, request, recorded,
                      None)

    async def _run_tool(self, tool_call: dict[str, Any], tools: list[Any],
                        executor: Callable[..., Any] | None, deps: Any) -> dict[str, Any]:
        name = str(tool_call["name"])
        tool = None if executor is not None else find_tool(tools, name)
        if executor is None and tool is None:
            # Decided by journaled data alone, so it needs no activity of its own.
            return {"id": tool_call["id"], "name": name, "result": f"Tool not found: {name}",
                    "error": f"ToolNotFoundError: the agent has no tool {name!r}"}
        activity = _tool_activity(name, self.retry_policy)
        call = activity(self.workflow_ctx, tool_call)
        result: dict[str, Any] = await bind(call, _tool_call, _ToolCall(tool, executor, deps))
        return result


def _turn_activity(policy: RetryPolicy | None) -> Activity[..., Any]:
    entry = _turns.get(id(policy))
    if entry is None:
        entry = _turns[id(policy)] = (policy, request_activity("_chat_activity", policy))
    return entry[1]


def _tool_activity(name: str, policy: RetryPolicy | None) -> Activity[..., Any]:
    entry = _tools.get((name, id(policy)))
    if entry is None:

        async def run(ctx: WorkflowContext, call: dict[str, Any]) -> dict[str, Any]:
            bound = _tool_call.get()
            if bound.executor is not None:
                return await run_executor(bound.executor, call)
            return await run_tool(bound.tool, call, bound.deps)

        run.__name__ = run.__qualname__ = f"tool.{name}"
        entry = _tools[(name, id(policy))] = (policy, Activity(run, retry_policy=policy))
    return entry[1]
