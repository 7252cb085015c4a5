"""The web viewer's server side: its files under ``/viewer``, and the reads the
JSON API adds for it (``/api/nodes``, ``/api/instances/{id}/timeline``).

The viewer is static HTML, CSS and JavaScript shipped in the ``edda`` package
(``edda/viewer/``) that talks to the JSON API. It sits behind the app's
``authorize`` hook like the API, which raises a question a browser cannot
answer by itself: a navigation sends no ``Authorization`` header. So the page
(``/viewer/``) is a small loader that carries no data and no code of the
viewer; it is answered ``200`` when the hook lets the request through and
``401`` (with the same body) when not. The loader fetches the viewer's scripts
and style with the token the user entered (kept in ``sessionStorage``) as a
bearer header, runs them from ``blob:`` URLs, and the scripts send the same
header with every API call. Everything but the loader is refused without it.

A Content-Security-Policy allows the loader (by its hash), ``blob:`` scripts
and styles, and requests to this origin only.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from edda.journal.errors import DatabaseUnavailableError
from edda.runtime.timeline import timeline as steps_of

if TYPE_CHECKING:
    from edda.runtime.app import EddaApp

#: The viewer's files: folder ``viewer`` of the ``edda`` package.
_FILES = importlib.resources.files("edda") / "viewer"
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9-]*\.(js|css)$")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
          "html": "text/html; charset=utf-8"}
#: How long ``/api/nodes`` waits for the lease tables before it answers 503.
_READ_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Asset:
    """An answer of the viewer: status, body and headers (``content-type`` among them)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _load(name: str) -> bytes | None:
    try:
        return (_FILES / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _hashes(page: bytes, tag: bytes) -> str:
    """CSP sources for the page's inline ``<tag>`` elements, by their hashes."""
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(text).digest()).decode()}'"
                    for text in re.findall(rb"<%s>(.*?)</%s>" % (tag, tag), page, re.S))


def _policy(page: bytes) -> str:
    """The Content-Security-Policy of the viewer: the page's own inline loader and
    style (by hash), the scripts and style the loader makes into ``blob:`` URLs, and
    API calls to this origin; no frames around it."""
    return ("default-src 'none'; "
            f"script-src {_hashes(page, b'script')} blob:; "
            f"style-src {_hashes(page, b'style')} blob:; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


_PAGE = _load("index.html") or b""
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", "content-security-policy": _policy(_PAGE)}


def _json(status: int, error: str, error_type: str, **extra: str) -> Asset:
    body = json.dumps({"error": error, "error_type": error_type, "retryable": False})
    return Asset(status, body.encode(), {"content-type": "application/json", **extra})


def serve(method: str, path: str, *, allowed: bool) -> Asset | None:
    """The answer to a request under ``/viewer``.

    Args:
        method: The request's method.
        path: The path below ``/viewer`` (``""``, ``"/"``, ``"/assets/list.js"``).
        allowed: Whether the ``authorize`` hook let the request through.

    Returns:
        The answer; None for a refused request the caller answers with its usual
        401 (anything but the page itself).
    """
    page = path in ("", "/", "/index.html")
    if not allowed:
        if page and method in ("GET", "HEAD"):
            return Asset(401, _PAGE, {"content-type": _TYPES["html"], **_HEADERS,
                                      "www-authenticate": "Bearer"})
        return None
    if method not in ("GET", "HEAD"):
        return _json(405, f"{method} is not accepted here; the viewer answers GET",
                     "MethodNotAllowed", allow="GET, HEAD")
    if page:
        return Asset(200, _PAGE, {"content-type": _TYPES["html"], **_HEADERS})
    name = path.removeprefix("/assets/")
    if name != path and _ASSET_NAME.match(name):
        body = _load(name)
        if body is not None:
            return Asset(200, body, {"content-type": _TYPES[name.rsplit(".", 1)[1]],
                                     **_HEADERS})
    return _json(404, "the viewer has no such page; open /viewer/", "NotFound")


async def nodes(app: EddaApp) -> dict[str, Any]:
    """Which node owns what: the live nodes of the database (their leases, by the
    database's clock) and the partitions each holds.

    Raises:
        DatabaseUnavailableError: If the lease tables cannot be read in time.
    """
    store = app.stores.leases
    try:
        with anyio.fail_after(_READ_SECONDS):
            rows = await store.nodes()
            leases = await store.partitions()
    except TimeoutError as exc:
        raise DatabaseUnavailableError(exc, maybe_committed=False) from None
    held: dict[str, list[int]] = {}
    for lease in leases:
        if lease.owner_node is not None and lease.remaining > 0:
            held.setdefault(lease.owner_node, []).append(lease.partition)
    return {
        "node": app.worker_id,
        "partition_count": len(leases),
        "nodes": [{"node_id": row.node_id, "hostname": row.hostname, "pid": row.pid,
                   "lease_remaining_seconds": round(row.remaining, 2),
                   "alive": not row.expired, "this_node": row.node_id == app.worker_id,
                   "partitions": held.get(row.node_id, [])}
                  for row in sorted(rows, key=lambda r: r.node_id)],
        "partitions": [{"partition": lease.partition,
                        "owner_node": lease.owner_node if lease.remaining > 0 else None,
                        "epoch": lease.epoch,
                        "lease_remaining_seconds": round(max(lease.remaining, 0.0), 2)}
                       for lease in leases],
    }


async def timeline(app: EddaApp, instance_id: str) -> dict[str, Any] | None:
    """An instance's journal as timeline steps (`edda.runtime.timeline`), or None
    if there is no such instance."""
    if await app.get_instance(instance_id) is None:
        return None
    return {"instance_id": instance_id, "timeline": steps_of(await app.get_history(instance_id))}
