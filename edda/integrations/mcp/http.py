"""The MCP server's ASGI application: MCP at ``/mcp``, everything else to the `EddaApp`.

``/mcp`` is the MCP SDK's streamable HTTP transport, stateless (every request is
served on its own, so any process of the service can answer any request: the
state is in the database) and answering with an SSE stream, which carries the
progress notifications before the result. Every other path goes to the
`EddaApp`'s own ASGI interface: ``POST /cancel/{instance_id}`` (Edda's cancel
route), CloudEvents, ``/health`` and the JSON API, so one node serves all of them.

Authorization: ``/mcp`` needs the server's bearer token (when a ``token_verifier``
is given) and must pass the `EddaApp`'s ``authorize`` hook (when it has one). The
app's own routes keep the app's rules; when the server builds the app itself, the
token verifier is that app's ``authorize`` hook, and when the server is given an
app, the token verifier guards the app's guarded routes (cancel, ``/api/``,
``/viewer``) as well.

The SDK's session manager runs for the lifetime of the ASGI lifespan, which also
initializes the server (and shuts it down if the lifespan started it): serve the
app with lifespan events on (uvicorn's default).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from edda.runtime.http import HttpRequest

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edda.integrations.mcp.auth import BearerCheck
    from edda.integrations.mcp.server import EddaMCPServer

log = logging.getLogger("edda.mcp")

#: The MCP endpoint, relative to where the app is mounted.
MCP_PATH = "/mcp"


def _guarded_by_app(path: str) -> bool:
    """The routes an `EddaApp`'s ``authorize`` hook guards (besides CloudEvents, when asked)."""
    return (path.startswith(("/cancel/", "/api/")) or path == "/viewer"
            or path.startswith("/viewer/"))


class MCPAsgiApp:
    """ASGI: ``/mcp`` to the MCP session manager, other paths to the server's `EddaApp`."""

    def __init__(self, server: EddaMCPServer, *, token: BearerCheck | None,
                 app_given: bool) -> None:
        self._server = server
        self._token = token
        #: The app was given to the server (it has rules of its own); else the server
        #: built it, with the token check as its authorize hook.
        self._app_given = app_given
        self._manager = StreamableHTTPSessionManager(server.mcp_server, stateless=True,
                                                     json_response=False)
        self._running = False

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self._server.app(scope, receive, send)
            return
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        try:
            headers = {k.decode("latin-1").lower(): v.decode("utf-8")
                       for k, v in scope.get("headers", [])}
        except UnicodeDecodeError:
            await _respond(send, 400, "a header value is not UTF-8", "BadHeader")
            return
        if path in (MCP_PATH, MCP_PATH + "/"):
            await self._mcp(scope, receive, send, path, headers)
            return
        if self._app_given and _guarded_by_app(path):
            if not await self._token_passes(send, headers):
                return
        await self._server.app(scope, receive, send)

    async def _mcp(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                   send: Callable[[Any], Awaitable[None]], path: str,
                   headers: dict[str, str]) -> None:
        if not await self._token_passes(send, headers):
            return
        request = HttpRequest(scope.get("method", "GET").upper(), path, headers,
                              scope.get("client"))
        # A given app's own authorize hook guards MCP as it guards the app's other routes.
        if self._app_given and not await self._server.app._http._allowed(request):
            await _respond(send, 401, "unauthorized", "Unauthorized",
                           {"www-authenticate": "Bearer"})
            return
        if not self._running:
            await _respond(send, 503, "the MCP endpoint runs within the ASGI lifespan: serve "
                           "this app with lifespan events on (uvicorn's default)",
                           "NotStarted", retryable=True)
            return
        await self._manager.handle_request(scope, receive, send)

    async def _token_passes(self, send: Callable[[Any], Awaitable[None]],
                            headers: dict[str, str]) -> bool:
        """Whether the request's bearer token passes (answering 401 or 500 if not)."""
        if self._token is None:
            return True
        try:
            refusal = await self._token.refusal(headers)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.error("the token verifier failed (error id %s)", error_id, exc_info=exc)
            await _respond(send, 500, f"internal error; the server's log has it under error id "
                           f"{error_id}", "InternalError")
            return False
        if refusal is None:
            return True
        challenge = 'Bearer error="invalid_token"' if "not accepted" in refusal else "Bearer"
        await _respond(send, 401, refusal, "Unauthorized", {"www-authenticate": challenge})
        return False

    async def _lifespan(self, receive: Callable[[], Awaitable[Any]],
                        send: Callable[[Any], Awaitable[None]]) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started_here = not self._server.app._initialized
        try:
            await self._server.initialize()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        try:
            async with self._manager.run():
                self._running = True
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                self._running = False
        finally:
            self._running = False
            if started_here:
                await self._server.shutdown()
        await send({"type": "lifespan.shutdown.complete"})


async def _respond(send: Callable[[Any], Awaitable[None]], status: int, error: str,
                   error_type: str, headers: dict[str, str] | None = None, *,
                   retryable: bool = False) -> None:
    body = json.dumps({"error": error, "error_type": error_type,
                       "retryable": retryable}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
