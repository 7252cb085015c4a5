"""A model served over real HTTP: an OpenAI- and Anthropic-compatible endpoint.

`FakeLLM` is an ASGI app that answers ``POST /v1/chat/completions`` (OpenAI's
Chat Completions API) and ``POST /v1/messages`` (Anthropic's Messages API) the
way those providers do, so Mirascope's real provider code and the providers'
real SDKs talk to it. What it answers is decided by a script: a function of the
request (the conversation so far, normalised to one shape for both APIs).
Every request is recorded, and ``failures`` makes the next requests fail with
an HTTP status (500, 429, 401, ...) first. The SDKs are told not to retry on
their own (``x-should-retry: false``), so retries are the activity's.

Run it with `tests.support.web.serve` in the test's process, so its counts
survive a child process that is killed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.web import read_body

FORMAT_TOOL = "__mirascope_formatted_output_tool__"


@dataclass
class Reply:
    """What the model answers: text, tool calls ``(name, args)``, or structured data
    (sent as the format tool's call when Mirascope asked for one, else as JSON text)."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    structured: Any = None


@dataclass
class Request:
    """One request as the model saw it."""

    api: str  # "openai" or "anthropic"
    model: str
    system: str | None
    #: ``{"role": "user" | "assistant", "content": str, "tool_calls": [...]}`` and
    #: ``{"role": "tool", "id": ..., "content": str}``, in order.
    messages: list[dict[str, Any]]
    tools: list[str]
    body: dict[str, Any]

    def tool_results(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "tool"]

    def user_text(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


Script = Callable[[Request], Reply]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part.get("text"), str)
                   else _text(part.get("content", "")) for part in content)


def _openai_request(body: dict[str, Any]) -> Request:
    system = None
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message["role"]
        if role in ("system", "developer"):
            system = _text(message["content"])
        elif role == "tool":
            messages.append({"role": "tool", "id": message["tool_call_id"],
                             "content": _text(message["content"])})
        else:
            entry: dict[str, Any] = {"role": role, "content": _text(message.get("content") or "")}
            if message.get("tool_calls"):
                entry["tool_calls"] = [
                    {"id": c["id"], "name": c["function"]["name"],
                     "args": json.loads(c["function"]["arguments"])}
                    for c in message["tool_calls"]]
            messages.append(entry)
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    return Request("openai", body["model"], system, messages, tools, body)


def _anthropic_request(body: dict[str, Any]) -> Request:
    system = body.get("system")
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        texts = [b["text"] for b in content if b["type"] == "text"]
        calls = [{"id": b["id"], "name": b["name"], "args": b["input"]}
                 for b in content if b["type"] == "tool_use"]
        messages.extend({"role": "tool", "id": block["tool_use_id"],
                         "content": _text(block.get("content", ""))}
                        for block in content if block["type"] == "tool_result")
        if texts or calls:
            entry: dict[str, Any] = {"role": message["role"], "content": "".join(texts)}
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
    tools = [t["name"] for t in body.get("tools", [])]
    return Request("anthropic", body["model"],
                   None if system is None else _text(system), messages, tools, body)


class FakeLLM:
    """The endpoint; ``script`` decides every answer."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        #: HTTP statuses to fail the next requests with, in order.
        self.failures: list[int] = []
        self._ids = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        assert scope["type"] == "http", scope["type"]
        body = await read_body(receive)
        data = json.loads(body)
        path = scope["path"]
        if path.endswith("/chat/completions"):
            request = _openai_request(data)
        elif path.endswith("/messages"):
            request = _anthropic_request(data)
        else:
            await _answer(send, 404, {"error": {"message": f"no route {path}"}})
            return
        self.requests.append(request)
        if self.failures:
            status = self.failures.pop(0)
            error = ({"type": "error", "error": {"type": "api_error", "message": "scripted"}}
                     if request.api == "anthropic"
                     else {"error": {"message": "scripted", "type": "server_error"}})
            await _answer(send, status, error)
            return
        reply = self.script(request)
        answer = (self._anthropic(request, reply) if request.api == "anthropic"
                  else self._openai(request, reply))
        await _answer(send, 200, answer)

    def _calls(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Any]]]:
        calls: list[tuple[str, Any]] = list(reply.tool_calls)
        text = reply.text
        if reply.structured is not None:
            if FORMAT_TOOL in "".join(request.tools):
                name = next(t for t in request.tools if t.startswith(FORMAT_TOOL))
                calls.append((name, reply.structured))
            else:
                text = json.dumps(reply.structured)
        return text, calls

    def _openai(self, request: Request, reply: Reply) -> dict[str, Any]:
        text, calls = self._calls(request, reply)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [
                {"id": f"call_{next(self._ids)}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}
                for name, args in calls]
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": 0, "model": request.model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}

    def _anthropic(self, request: Request, reply: Reply) -> dict[str, Any]:
        text, calls = self._calls(request, reply)
        content: list[dict[str, Any]] = [] if text is None else [{"type": "text", "text": text}]
        content += [{"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name,
                     "input": args} for name, args in calls]
        return {"id": f"msg_{len(self.requests)}", "type": "message", "role": "assistant",
                "model": request.model, "content": content,
                "stop_reason": "tool_use" if calls else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 7}}


async def _answer(send: Callable[[Any], Awaitable[None]], status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            # The SDKs would retry 429 and 5xx themselves; here the
                            # activity's retry policy must be what retries.
                            (b"x-should-retry", b"false")]})
    await send({"type": "http.response.body", "body": data})
