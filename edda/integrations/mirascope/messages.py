"""Conversations as journal data: message dicts to Mirascope messages, and back.

A message dict is ``{"role": "system" | "user" | "assistant", "content": str}``;
an assistant message may carry ``"tool_calls": [{"id", "name", "args"}]``, and
a tool's answer is ``{"role": "tool", "tool_call_id", "name", "content"}``.
These are what `call_with_messages` takes and what a tool loop journals, so a
conversation with tool calls replays from plain data.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mirascope import llm
from mirascope.llm.messages import AssistantMessage, SystemMessage, UserMessage

if TYPE_CHECKING:
    from collections.abc import Sequence

_ROLES = ("system", "user", "assistant", "tool")


def check_message_dicts(messages: object) -> list[dict[str, Any]]:
    """``messages`` if it is a list of message dicts.

    Raises:
        TypeError: If it is not a list of dicts.
        ValueError: Naming the first message with an unknown role or without content.
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise TypeError("messages must be a list of dicts like {'role': 'user', 'content': '...'}")
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ValueError(f"messages[{index}] has role {role!r}; roles are "
                             f"{', '.join(_ROLES)}")
        if role == "tool" and not message.get("tool_call_id"):
            raise ValueError(f"messages[{index}] is a tool answer without 'tool_call_id'")
        if "content" not in message and not message.get("tool_calls"):
            raise ValueError(f"messages[{index}] has no 'content'")
    return messages


def to_messages(items: Sequence[Any]) -> list[llm.Message]:
    """Mirascope messages for message dicts, strings (user messages) or messages.

    Consecutive tool answers become one user message, as providers expect them.

    Raises:
        TypeError: For an item that is none of these.
    """
    messages: list[llm.Message] = []
    for index, item in enumerate(items):
        if isinstance(item, SystemMessage | UserMessage | AssistantMessage):
            messages.append(item)
        elif isinstance(item, str):
            messages.append(llm.messages.user(item))
        elif isinstance(item, dict):
            _append_dict(messages, item)
        else:
            raise TypeError(f"prompt item {index} is a {type(item).__name__}; give message "
                            "dicts, strings or Mirascope messages (llm.messages.user(...))")
    return messages


def _append_dict(messages: list[llm.Message], item: dict[str, Any]) -> None:
    role = item.get("role")
    content = item.get("content")
    if role == "system":
        messages.append(llm.messages.system(str(content)))
    elif role == "user":
        messages.append(llm.messages.user(str(content)))
    elif role == "assistant":
        parts: list[Any] = [llm.Text(text=str(content))] if content else []
        parts.extend(
            llm.ToolCall(id=str(call["id"]), name=str(call["name"]),
                         args=call["args"] if isinstance(call["args"], str)
                         else json.dumps(call["args"]))
            for call in item.get("tool_calls") or ())
        messages.append(llm.messages.assistant(parts, model_id=None, provider_id=None))
    elif role == "tool":
        output = llm.ToolOutput(id=str(item["tool_call_id"]), name=str(item.get("name", "")),
                                result=content)
        last = messages[-1] if messages else None
        if isinstance(last, UserMessage) and last.content and all(
                isinstance(part, llm.ToolOutput) for part in last.content):
            messages[-1] = UserMessage(content=[*last.content, output], name=last.name)
        else:
            messages.append(llm.messages.user([output]))
    else:
        raise ValueError(f"unknown message role {role!r}")


def assistant_dict(response: dict[str, Any]) -> dict[str, Any]:
    """The assistant message dict of a journaled response (with its tool calls)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.get("content", "")}
    if response.get("tool_calls"):
        message["tool_calls"] = response["tool_calls"]
    return message


def tool_dict(output: dict[str, Any]) -> dict[str, Any]:
    """The tool answer message dict of a journaled tool result."""
    return {"role": "tool", "tool_call_id": output["id"], "name": output["name"],
            "content": output["result"]}
