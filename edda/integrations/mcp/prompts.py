"""MCP prompts: functions (sync or async) that return the messages of a prompt.

A prompt function takes the prompt's arguments (MCP sends them as strings; they
are converted to the function's annotations by pydantic) and returns one message
or a list of them. A message may be an MCP ``PromptMessage``, the SDK's
``UserMessage`` / ``AssistantMessage``, a dict of ``role`` and ``content``, a plain
string (a user message) or a content block (a user message). Sync functions run
in a worker thread, so a slow one does not hold up the server.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import mcp_types as types
import pydantic
from mcp.shared.exceptions import MCPError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("edda.mcp")

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class PromptEntry:
    """One registered prompt function."""

    def __init__(self, func: Callable[..., Any], name: str, description: str) -> None:
        if not callable(func):
            raise TypeError(f"prompt needs a function, got {func!r}")
        self.func = func
        self.name = name
        self.description = description
        params = inspect.signature(func).parameters.values()
        self.arguments = [types.PromptArgument(name=p.name,
                                               required=p.default is inspect.Parameter.empty)
                          for p in params if p.kind in _NAMED]
        self._validated = pydantic.validate_call(func)
        self._is_async = inspect.iscoroutinefunction(func)

    def definition(self) -> types.Prompt:
        return types.Prompt(name=self.name, description=self.description,
                            arguments=self.arguments)

    async def render(self, arguments: dict[str, str] | None) -> types.GetPromptResult:
        """The prompt's messages for ``arguments``.

        Raises:
            MCPError: For missing or unfitting arguments (invalid params), or when the
                function fails or returns something that is not a message (internal
                error; the log has the details).
        """
        given = dict(arguments or {})
        missing = [a.name for a in self.arguments if a.required and a.name not in given]
        if missing:
            raise MCPError(types.INVALID_PARAMS, f"Missing required arguments for prompt "
                                                 f"'{self.name}': {', '.join(missing)}")
        try:
            if self._is_async:
                value = await self._validated(**given)
            else:
                value = await anyio.to_thread.run_sync(functools.partial(self._validated, **given))
        except pydantic.ValidationError as exc:
            if exc.title == self.func.__name__:  # the arguments, not something inside
                reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                   for e in exc.errors()[:5])
                raise MCPError(types.INVALID_PARAMS,
                               f"Invalid arguments for prompt '{self.name}': {reason}") from None
            raise self._failed(exc) from None
        except Exception as exc:
            raise self._failed(exc) from None
        try:
            messages = messages_of(value)
        except (TypeError, ValueError) as exc:
            raise self._failed(exc) from None
        return types.GetPromptResult(description=self.description, messages=messages)

    def _failed(self, exc: Exception) -> MCPError:
        log.error("prompt %r failed", self.name, exc_info=exc)
        return MCPError(types.INTERNAL_ERROR, f"Error rendering prompt '{self.name}'")


def messages_of(value: Any) -> list[types.PromptMessage]:
    """The prompt messages a prompt function returned.

    Raises:
        TypeError, ValueError: For something that is not a message.
    """
    items = value if isinstance(value, list | tuple) else [value]
    return [_message(item) for item in items]


def _message(item: Any) -> types.PromptMessage:
    if isinstance(item, types.PromptMessage):
        return item
    if isinstance(item, str):
        return types.PromptMessage(role="user", content=types.TextContent(text=item))
    if isinstance(item, dict):
        content = item.get("content")
        if isinstance(content, str):
            item = {**item, "content": {"type": "text", "text": content}}
        return types.PromptMessage.model_validate(item)
    if isinstance(item, pydantic.BaseModel) and hasattr(item, "role") and hasattr(item, "content"):
        # The SDK's UserMessage and AssistantMessage, and look-alikes.
        return types.PromptMessage.model_validate({"role": item.role, "content": item.content})
    if isinstance(item, types.TextContent | types.ImageContent | types.AudioContent
                  | types.ResourceLink | types.EmbeddedResource):
        return types.PromptMessage(role="user", content=item)
    raise TypeError(f"a prompt function must return messages (PromptMessage, UserMessage, "
                    f"AssistantMessage, a dict of role and content, or a string), "
                    f"got {type(item).__name__}")
