"""WSGI deployment: ``create_wsgi_app(edda_app)`` for gunicorn, uWSGI and friends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edda.runtime.app import EddaApp


def create_wsgi_app(edda_app: EddaApp) -> Any:
    """The app as a WSGI application (``a2wsgi.ASGIMiddleware``).

    The adapter runs the ASGI app on an event loop thread of its own, so the
    node (its actors, timers and relayer) lives in each WSGI worker process.
    """
    from a2wsgi import ASGIMiddleware

    return ASGIMiddleware(edda_app)  # type: ignore[arg-type]


__all__ = ["create_wsgi_app"]
