"""The HTTP edge: `EddaApp` as an ASGI application.

Routes, relative to wherever the app is mounted:

- ``POST /<any path>``: a CloudEvent (structured or binary content mode). It is
  committed before the answer: ``202 {"status": "accepted"}``; ``400`` with
  ``error``, ``error_type`` and ``retryable: false`` for a request that is not a
  CloudEvent 1.0 or cannot be stored; ``503`` with ``retryable: true`` while the
  database is unavailable; ``500`` with an ``error_id`` (and nothing of the
  failure itself, which the log has under that id) for an internal error.
- ``POST /cancel/{instance_id}``: Edda's cancel route.
- ``GET /health``: ``200`` while the node runs.
- ``/api/...``: a small JSON API (`edda.runtime.openapi` documents it,
  served at ``GET /openapi.json``).
- ``GET /viewer/``: the web viewer (`edda.runtime.viewer`).

Bodies over ``max_body_bytes`` get ``413``; an ``authorize`` hook guards the
cancel route, the JSON API and the viewer (and, if asked, the CloudEvents
route) with ``401``. A rejected request changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import inspect
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qs, unquote

import pydantic

from edda.actors.node import NodeFailedError
from edda.journal.errors import DatabaseUnavailableError
from edda.journal.faults import describe, is_transient
from edda.runtime import viewer
from edda.runtime.limits import check_json_depth, check_key
from edda.runtime.openapi import OPENAPI

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.http")

@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What an `Authorizer` sees of a request: method, path (below the mount
    point), lower-cased headers and the client address."""

    method: str
    path: str
    headers: Mapping[str, str]
    client: tuple[str, int] | None = None


#: ``authorize(request) -> bool`` (or an awaitable of it): may this request pass?
Authorizer: TypeAlias = "Callable[[HttpRequest], bool | Awaitable[bool]]"


def bearer_token(token: str) -> Callable[[HttpRequest], bool]:
    """An authorizer that lets through ``Authorization: Bearer <token>`` only.

    Raises:
        ValueError: If ``token`` is empty.
    """
    if not isinstance(token, str) or not token:
        raise ValueError("bearer_token needs a non-empty token")
    expected = f"Bearer {token}".encode()

    def authorize(request: HttpRequest) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    return authorize


@dataclass(slots=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _json_default(value: object) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"_base64": base64.b64encode(bytes(value)).decode()}
    return str(value)


def _error(status: int, error: str, error_type: str, *, retryable: bool) -> Response:
    return Response(status, {"error": error, "error_type": error_type, "retryable": retryable})


def _bad(exc: BaseException) -> Response:
    """400 for a request the edge cannot accept, with the first line of the reason
    (for a validation error, where and what)."""
    if isinstance(exc, pydantic.ValidationError):
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                           for e in exc.errors()[:3])
    else:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if len(reason) > 300:
        reason = reason[:297] + "..."
    return _error(400, reason, type(exc).__name__, retryable=False)


def _failure(exc: BaseException, what: str) -> Response:
    """A request that failed on this side. The body reveals nothing of it (no SQL,
    parameters, stored data or traceback): 503 when the database is unavailable
    (worth retrying), else 500 naming an error id under which the log has it."""
    if isinstance(exc, DatabaseUnavailableError) or is_transient(exc):
        log.warning("%s: the database is unavailable (%s)", what, describe(exc))
        return _error(503, "the database is unavailable; try again shortly",
                      "DatabaseUnavailable", retryable=True)
    if isinstance(exc, NodeFailedError):
        return _error(503, "this node has stopped; try again or another node",
                      "NodeStopped", retryable=True)
    error_id = uuid.uuid4().hex[:12]
    log.error("%s failed (error id %s)", what, error_id, exc_info=exc)
    return Response(500, {"error": f"internal error; the server's log has it under error id "
                                   f"{error_id}", "error_type": "InternalError",
                          "error_id": error_id, "retryable": False})


_REQUIRED = ("id", "source", "type")


def _spec_problem(headers: Mapping[str, str], body: bytes) -> tuple[str, str] | None:
    """What makes the request not a CloudEvent 1.0 (structured or binary mode), with
    the error type Edda's SDK names it by."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/cloudevents-batch+json":
        return ("batched CloudEvents are not accepted; send one event per request",
                "InvalidHeadersFormat")
    if content_type == "application/cloudevents+json":
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return f"the body is not JSON: {exc}", "InvalidStructuredJSON"
        if not isinstance(value, dict):
            return (f"a structured CloudEvent must be a JSON object, not "
                    f"{type(value).__name__}", "InvalidStructuredJSON")
        attributes: Mapping[str, Any] = value
        prefix = ""
    else:
        attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        prefix = "ce-"
    missing = [f"{prefix}{name}" for name in ("specversion", *_REQUIRED)
               if not isinstance(attributes.get(name), str) or not attributes.get(name)]
    if missing:
        return (f"required CloudEvent attributes missing or empty: {', '.join(missing)} "
                "(send application/cloudevents+json, or the attributes as ce-* headers)",
                "MissingRequiredFields")
    if attributes["specversion"] != "1.0":
        return (f"{prefix}specversion {attributes['specversion']!r} is not supported; "
                "send \"1.0\"", "InvalidRequiredFields")
    return None


class HttpEdge:
    """The ASGI application of one `EddaApp`."""

    def __init__(self, app: EddaApp, *, max_body_bytes: int,
                 authorize: Authorizer | None,
                 authorize_events: bool) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) \
                or max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
        if authorize is not None and not callable(authorize):
            raise TypeError(f"authorize must be a callable taking an HttpRequest, got {authorize!r}")
        self._app = app
        self.max_body_bytes = max_body_bytes
        self._authorize = authorize
        self._authorize_events = authorize_events
        self._init_lock = asyncio.Lock()
        self._warned = False

    def _warn_if_open(self) -> None:
        """Say once, when the app first serves HTTP, which routes anyone may call."""
        if self._warned:
            return
        self._warned = True
        if self._authorize is None:
            log.warning("EddaApp %r serves HTTP without an authorize hook: anyone who can reach "
                        "it may start and inspect workflows (/api/...), cancel them "
                        "(POST /cancel/{id}) and send CloudEvents (POST /). Pass "
                        "EddaApp(authorize=bearer_token(...), authorize_events=True) or your "
                        "own check", self._app.service_name)
        elif not self._authorize_events:
            log.info("EddaApp %r accepts CloudEvents (POST /) without authorization; pass "
                     "authorize_events=True to check them too", self._app.service_name)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        kind = scope["type"]
        self._warn_if_open()
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            raise NotImplementedError(f"EddaApp serves HTTP, not {kind!r} connections")
        if not self._app._initialized:
            async with self._init_lock:
                await self._app.initialize()
        path = scope.get("path", "/")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        try:
            headers = {k.decode("latin-1").lower(): v.decode("utf-8")
                       for k, v in scope.get("headers", [])}
        except UnicodeDecodeError:
            await _respond(send, _error(400, "a header value is not UTF-8", "BadHeader",
                                        retryable=False))
            return
        request = HttpRequest(scope["method"].upper(), path or "/", headers, scope.get("client"))
        try:
            response = await self._route(request, scope, receive)
        except _TooLarge:
            response = _error(413, f"request body is larger than {self.max_body_bytes} bytes; "
                              "send a smaller event or raise EddaApp(max_body_bytes=...)",
                              "PayloadTooLarge", retryable=False)
        except _Disconnected:
            return
        except Exception as exc:
            response = _failure(exc, f"{request.method} {path}")
        await _respond(send, response)

    async def _route(self, request: HttpRequest, scope: dict[str, Any],
                     receive: Callable[[], Awaitable[Any]]) -> Response:
        method, path = request.method, request.path
        if path == "/health" and method in ("GET", "HEAD"):
            return Response(200, {"status": "ok", "service": self._app.service_name,
                                  "node": self._app.worker_id})
        if path == "/openapi.json" and method == "GET":
            return Response(200, OPENAPI)
        if path.startswith("/api/"):
            if not await self._allowed(request):
                return _unauthorized()
            return await self._api(request, scope, receive)
        if path == "/viewer" or path.startswith("/viewer/"):
            page = viewer.serve(method, path[len("/viewer"):],
                                allowed=await self._allowed(request))
            return _unauthorized() if page is None else Response(page.status, page.body,
                                                                  page.headers)
        if path.startswith("/cancel/") and method == "POST":
            if not await self._allowed(request):
                return _unauthorized()
            return await self._cancel(unquote(path[len("/cancel/"):]), "api_user")
        if method != "POST":
            return Response(405, {"error": f"{method} is not accepted here; POST a CloudEvent, "
                                  "or GET /health, /openapi.json or /api/...",
                                  "error_type": "MethodNotAllowed", "retryable": False},
                            {"allow": "POST"})
        if self._authorize_events and not await self._allowed(request):
            return _unauthorized()
        body = await self._body(scope, receive)
        return await self._cloudevent(request.headers, body)

    # -- CloudEvents -----------------------------------------------------------------

    async def _cloudevent(self, headers: Mapping[str, str], body: bytes) -> Response:
        from cloudevents.core.bindings.http import HTTPMessage, from_http_event
        from cloudevents.core.exceptions import BaseCloudEventException

        try:
            check_json_depth(body)
            problem = _spec_problem(headers, body)
            if problem is not None:
                return _error(400, problem[0], problem[1], retryable=False)
            event = from_http_event(HTTPMessage(dict(headers), body))
        except Exception as exc:  # whatever the SDK makes of a malformed request
            return _bad(exc)
        try:
            await self._app.handle_cloudevent(event)
        except (ValueError, TypeError, KeyError, BaseCloudEventException) as exc:
            return _bad(exc)
        except Exception as exc:
            return _failure(exc, "accepting a CloudEvent")
        return Response(202, {"status": "accepted"})

    async def _cancel(self, instance_id: str, cancelled_by: str) -> Response:
        if not instance_id:
            return Response(400, {"error": "Missing instance_id"})
        try:
            check_key(instance_id, "instance id")
        except ValueError as exc:
            return _bad(exc)
        try:
            result = await self._app.cancel_workflow(instance_id, cancelled_by)
        except Exception as exc:
            return _failure(exc, f"cancelling {instance_id!r}")
        if not result:
            return Response(400, {"error": "Cannot cancel workflow (not found or already "
                                  "completed/failed/cancelled)", "reason": result.reason})
        return Response(200, {"status": "cancelled", "instance_id": instance_id})

    # -- the JSON API ------------------------------------------------------------------

    async def _api(self, request: HttpRequest, scope: dict[str, Any],
                   receive: Callable[[], Awaitable[Any]]) -> Response:
        parts = [unquote(p) for p in request.path[len("/api/"):].split("/")]
        method = request.method
        app = self._app
        try:
            if len(parts) >= 2:
                check_key(parts[1], "workflow name" if parts[0] == "workflows"
                          else "instance id")
            match parts, method:
                case ["workflows"], "GET":
                    return Response(200, {"workflows": [
                        {"name": wf.name, "event_handler": wf.event_handler,
                         "input_schema": wf.input_schema()}
                        for wf in self._app.registry.workflows().values()]})
                case ["nodes"], "GET":
                    return Response(200, await viewer.nodes(app))
                case ["workflows", name], "POST":
                    wf = self._app.registry.workflow(name)
                    if wf is None:
                        return _error(404, f"no workflow named {name!r} is registered",
                                      "NotFound", retryable=False)
                    arguments = _json_object(await self._body(scope, receive))
                    instance_id = await app.start_instance(wf, **arguments)
                    return Response(202, {"instance_id": instance_id},
                                    {"location": f"api/instances/{instance_id}"})
                case ["instances"], "GET":
                    query = {k: v[-1] for k, v in
                             parse_qs(scope.get("query_string", b"").decode()).items()}
                    limit = int(query.pop("limit", "50"))
                    unknown = set(query) - {"status", "workflow_name", "instance_id",
                                            "search", "page_token"}
                    if unknown:
                        raise ValueError(f"unknown query parameters {sorted(unknown)}; use "
                                         "status, workflow_name, instance_id, search, limit, "
                                         "page_token")
                    # search: in ids or workflow names; beside a filter, in ids only
                    named, iid, search = (query.get(k) for k in
                                          ("workflow_name", "instance_id", "search"))
                    if search is not None:
                        named, iid = ((search, search) if named is None and iid is None
                                      else (named, iid or search))
                    return Response(200, await app.find_instances(
                        limit=limit, status=query.get("status"), instance_id=iid,
                        workflow_name=named,
                        page_token=query.get("page_token")))
                case ["instances", instance_id], "GET":
                    found = await app.get_instance(instance_id)
                    return Response(200, found) if found else _not_found(instance_id)
                case ["instances", instance_id, "result"], "GET":
                    found = await app.get_instance(instance_id)
                    return Response(200, _result_of(found)) if found else _not_found(instance_id)
                case ["instances", instance_id, "history"], "GET":
                    if await app.get_instance(instance_id) is None:
                        return _not_found(instance_id)
                    return Response(200, {"instance_id": instance_id,
                                          "history": await app.get_history(instance_id)})
                case ["instances", instance_id, "timeline"], "GET":
                    steps = await viewer.timeline(app, instance_id)
                    return Response(200, steps) if steps else _not_found(instance_id)
                case ["instances", instance_id, "cancel"], "POST":
                    return await self._cancel(instance_id, "api_user")
                case ["instances", instance_id, "retry"], "POST":
                    retried = await app.retry_workflow(instance_id, "api_user")
                    if retried:
                        return Response(200, {"status": "running", "instance_id": instance_id})
                    if retried.reason.startswith("no workflow instance"):
                        return _not_found(instance_id)
                    return _error(409, retried.reason, "NotRetryable", retryable=False)
        except (ValueError, TypeError) as exc:
            return _bad(exc)
        return _error(404, f"no API route {method} {request.path}; see /openapi.json",
                      "NotFound", retryable=False)

    # -- plumbing ----------------------------------------------------------------------

    async def _allowed(self, request: HttpRequest) -> bool:
        if self._authorize is None:
            return True
        verdict = self._authorize(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    async def _body(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]]) -> bytes:
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length" and value.isdigit() \
                    and int(value) > self.max_body_bytes:
                raise _TooLarge
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _lifespan(self, receive: Callable[[], Awaitable[Any]],
                        send: Callable[[Any], Awaitable[None]]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._app.initialize()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._app.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    check_json_depth(body)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the request body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("the request body must be a JSON object of the workflow's arguments")
    return value


def _result_of(instance: dict[str, Any]) -> dict[str, Any]:
    output = instance.get("output_data") or {}
    status = instance["status"]
    answer: dict[str, Any] = {"instance_id": instance["instance_id"], "status": status,
                              "finished": status in ("completed", "failed", "cancelled",
                                                     "recurred")}
    if status == "completed":
        answer["result"] = output.get("result")
    elif status in ("failed", "cancelled"):
        answer["error"] = output
    return answer


def _not_found(instance_id: str) -> Response:
    return _error(404, f"no workflow instance {instance_id!r}", "NotFound", retryable=False)


def _unauthorized() -> Response:
    return Response(401, {"error": "unauthorized", "error_type": "Unauthorized",
                          "retryable": False}, {"www-authenticate": "Bearer"})


async def _respond(send: Callable[[Any], Awaitable[None]], response: Response) -> None:
    extra = dict(response.headers)
    if isinstance(response.body, bytes):  # a page of the viewer, typed by its headers
        body, content_type = response.body, extra.pop("content-type")
    else:
        body = json.dumps(response.body, default=_json_default).encode()
        content_type = "application/json"
    headers = [(b"content-type", content_type.encode()),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
