"""`DurableResponse`: what one LLM call leaves in the journal.

Mirascope's response objects hold clients, toolkits and the provider's SDK
objects; none of that can be journaled. A `DurableResponse` keeps what a replay
needs, as plain data: the text, the tool calls the model asked for (id, name and
arguments), the usage, why the model stopped and the provider's raw answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edda.runtime.serialization import NotSerializableError, to_jsonable


def provider_of(model: str) -> str:
    """The provider part of a model id (``"openai/gpt-4o"`` -> ``"openai"``), or ``"unknown"``."""
    head, slash, _ = model.partition("/")
    return head if slash and head else "unknown"


@dataclass
class DurableResponse:
    """One LLM response as journal data.

    Attributes:
        content: The response's text (its text parts, joined by newlines).
        model: The model id that answered (``"openai/gpt-4o-mini"``).
        provider: The provider part of the model id.
        usage: Token counts (``input_tokens``, ``output_tokens``, ...), if reported.
        tool_calls: The tools the model asked to call, each ``{"id", "name",
            "args"}`` with ``args`` a dict; None if it asked for none.
        stop_reason: Why the model stopped, in the provider's words
            (``"stop"``, ``"tool_calls"``, ``"end_turn"``, ``"max_tokens"``, ...).
        raw: The provider's raw answer as JSON data.
    """

    content: str
    model: str
    provider: str
    usage: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    stop_reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tool_calls(self) -> bool:
        """Whether the model asked for tool calls."""
        return bool(self.tool_calls)

    def to_dict(self) -> dict[str, Any]:
        """The response as a JSON-compatible dict (what activities return)."""
        return {
            "content": self.content,
            "model": self.model,
            "provider": self.provider,
            "usage": self.usage,
            "tool_calls": self.tool_calls,
            "stop_reason": self.stop_reason,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DurableResponse:
        """The response ``to_dict`` gave (other keys, such as ``structured_output``, are
        ignored)."""
        return cls(
            content=data.get("content", ""),
            model=data.get("model", ""),
            provider=data.get("provider", "unknown"),
            usage=data.get("usage"),
            tool_calls=data.get("tool_calls"),
            stop_reason=data.get("stop_reason"),
            raw=data.get("raw") or {},
        )

    @classmethod
    def from_mirascope(cls, response: Any, provider: str) -> DurableResponse:
        """The journal form of a Mirascope ``llm`` response.

        Args:
            response: An ``llm.Response`` (or async/context variant).
            provider: The provider name to record.
        """
        tool_calls = [{"id": call.id, "name": call.name, "args": _args(call.args)}
                      for call in response.tool_calls]
        usage = response.usage
        return cls(
            content=response.text(),
            model=str(response.model_id),
            provider=provider,
            usage=None if usage is None else {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
            tool_calls=tool_calls or None,
            stop_reason=_stop_reason(response),
            raw=_raw(response.raw),
        )


def _args(args: str) -> Any:
    """A tool call's JSON arguments as data (left as the string if it is not JSON)."""
    try:
        return json.loads(args) if args.strip() else {}
    except ValueError:
        return args


def _stop_reason(response: Any) -> str | None:
    raw = response.raw
    reason = getattr(raw, "stop_reason", None)  # Anthropic
    if reason is None:
        choices = getattr(raw, "choices", None)  # OpenAI Chat Completions
        if choices:
            reason = getattr(choices[0], "finish_reason", None)
    if reason is None and response.finish_reason is not None:
        reason = response.finish_reason.value
    return None if reason is None else str(reason)


def _raw(raw: Any) -> dict[str, Any]:
    dump = getattr(raw, "model_dump", None)
    data = dump(mode="json") if callable(dump) else raw
    try:
        stored = to_jsonable(data, what="raw LLM response")
    except NotSerializableError:
        return {}
    return stored if isinstance(stored, dict) else {"value": stored}
