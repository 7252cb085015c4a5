"""Real HTTP for tests: serve an ASGI app with uvicorn on 127.0.0.1, and a broker sink.

`serve` runs uvicorn in the test's event loop on a free port and stops it
afterwards. `Sink` is an ASGI CloudEvents receiver whose answers the test
scripts (fail, hang past the client's timeout, recover) and which records every
delivery it received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Asgi = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                Awaitable[None]]


async def read_body(receive: Callable[[], Awaitable[Any]]) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body: bytes = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@asynccontextmanager
async def serve(app: Asgi, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan=lifespan,  # type: ignore[arg-type]
                            log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not server.started:
            if task.done():
                await task
                raise AssertionError("uvicorn stopped before it started")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("uvicorn did not start within 10 s")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@dataclass
class Sink:
    """A CloudEvents sink. ``script`` maps an event id to the answers of its
    successive deliveries (an int status, or "hang" to never answer in time);
    unscripted deliveries get ``default``."""

    default: int | str = 200
    script: dict[str, list[int | str]] = field(default_factory=dict)
    #: Every delivery, in arrival order: (event id, parsed body or ce- headers, answer).
    deliveries: list[tuple[str, dict[str, Any], int | str]] = field(default_factory=list)
    hang_seconds: float = 5.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set to end every hanging answer at once.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted_ids(self) -> list[str]:
        return [event_id for event_id, _, answer in self.deliveries if answer == 200]

    def events(self) -> dict[str, dict[str, Any]]:
        """The delivered events by id (the first copy of each)."""
        seen: dict[str, dict[str, Any]] = {}
        for event_id, event, _ in self.deliveries:
            seen.setdefault(event_id, event)
        return seen

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-type", "").startswith("application/cloudevents+json"):
            event = json.loads(body)
        else:
            event = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
            event["data_bytes"] = body
            event["content-type"] = headers.get("content-type")
        event_id = str(event.get("id"))
        planned = self.script.get(event_id)
        answer = planned.pop(0) if planned else self.default
        self.deliveries.append((event_id, event, answer))
        self.arrived.set()
        if answer == "hang":
            try:
                await asyncio.wait_for(self.released.wait(), self.hang_seconds)
            except TimeoutError:
                pass
            answer = 200  # too late: the client has given up
        status = answer if isinstance(answer, int) else 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})
