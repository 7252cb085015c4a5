"""Tools as the journal sees them: by name, and by what their calls returned.

A tool is a Mirascope tool (``@llm.tool``) or a plain function, which becomes
one. Tools are never journaled: activities record their names, and a tool call
is recorded as its id, name, arguments and result.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from mirascope import llm
from mirascope.llm.tools import AsyncContextTool, ContextTool, ProviderTool, ToolSchema

from edda.runtime.serialization import NotSerializableError, to_jsonable


def normalize_tools(tools: Sequence[Any] | None, *, context: bool) -> list[Any]:
    """Mirascope tools for ``tools``; plain functions are made tools with ``llm.tool``.

    Args:
        tools: The tools, or None.
        context: Whether context tools (``ctx: llm.Context[...]`` first) are allowed.

    Raises:
        TypeError: For something that is not a tool or function, or a context
            tool where none is allowed.
    """
    if tools is None:
        return []
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise TypeError(f"tools must be a list of tools or functions, got {type(tools).__name__}")
    result: list[Any] = []
    for tool in tools:
        if not isinstance(tool, ToolSchema | ProviderTool):
            if not callable(tool):
                raise TypeError(f"a tool must be an @llm.tool or a function, got {tool!r}")
            tool = llm.tool(tool)
        if not context and isinstance(tool, ContextTool | AsyncContextTool):
            raise TypeError(f"tool {tool.name!r} takes an llm.Context; context tools work with "
                            "DurableAgent, which passes its deps")
        result.append(tool)
    names = [tool.name for tool in result]
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be unique, got {names}")
    return result


def tool_names(tools: Sequence[Any]) -> list[str]:
    """The names an activity records for its tools."""
    return [str(tool.name) for tool in tools]


def find_tool(tools: Sequence[Any], name: str) -> Any | None:
    """The tool called ``name`` (not provider tools, which the provider runs)."""
    return next((tool for tool in tools
                 if isinstance(tool, ToolSchema) and tool.name == name), None)


async def run_tool(tool: Any, call: dict[str, Any], deps: Any) -> dict[str, Any]:
    """Call ``tool`` for the journaled tool ``call``; the result to journal.

    An error raised by the tool is its result, as Mirascope hands it to the
    model: ``result`` is the message and ``error`` names the exception.
    """
    tool_call = llm.ToolCall(id=str(call["id"]), name=str(call["name"]),
                             args=call["args"] if isinstance(call["args"], str)
                             else json.dumps(call["args"]))
    args: tuple[Any, ...] = (tool_call,)
    if isinstance(tool, ContextTool | AsyncContextTool):
        args = (llm.Context(deps=deps), tool_call)
    if inspect.iscoroutinefunction(tool.execute):
        output = await tool.execute(*args)
    else:
        output = await anyio.to_thread.run_sync(functools.partial(tool.execute, *args))
    return _recorded(call, output.result, output.error)


async def run_executor(executor: Callable[..., Any], call: dict[str, Any]) -> dict[str, Any]:
    """Call a ``tool_executor(name, args)`` for the journaled tool ``call``."""
    args = call["args"] if isinstance(call["args"], dict) else {"input": call["args"]}
    try:
        result = executor(call["name"], args)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return _recorded(call, str(exc), exc)
    return _recorded(call, result, None)


def _recorded(call: dict[str, Any], result: Any, error: BaseException | None) -> dict[str, Any]:
    name = call["name"]
    try:
        stored = to_jsonable(result, what=f"result of tool {name!r}")
    except NotSerializableError:
        # What the model is told is what the journal holds: the result's text.
        stored = str(result)
    cause = getattr(error, "tool_exception", error)  # Mirascope wraps what the tool raised
    return {"id": call["id"], "name": name, "result": stored,
            "error": None if cause is None else f"{type(cause).__name__}: {cause}"}
