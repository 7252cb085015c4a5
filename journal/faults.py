"""Telling an unavailable database from a refused write.

A *transient* fault says nothing about the write: the server is down or
restarting, a connection dropped, the file is locked, read-only or the disk is
full. The same write succeeds once the database is back, so the runtime pauses
and tries again; it never fails a workflow for it. Anything else (a constraint
violation, a fenced append, a bug) is an answer about the write itself and goes
to its caller.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import exc as sa_exc

#: SQLSTATE classes and codes of a PostgreSQL server that cannot serve now.
_PG_TRANSIENT_CLASSES = ("08", "53", "57P", "58")
_PG_TRANSIENT_CODES = frozenset({"40001", "40P01", "25006", "55000", "55006"})
#: What SQLite says when the file, not the statement, is the problem.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "readonly database",
                     "disk is full", "disk i/o error", "unable to open database file",
                     "database is busy", "attempt to write a readonly")


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` means the database is unavailable, not that the work is wrong."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa_exc.TimeoutError):  # the pool found no free connection
            return True
        state = _sqlstate(current)
        if state is not None:
            return state in _PG_TRANSIENT_CODES or state.startswith(_PG_TRANSIENT_CLASSES)
        if isinstance(current, ConnectionError | TimeoutError | asyncio.TimeoutError):
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError):
            return True
        name = type(current).__name__
        if name in ("ConnectionDoesNotExistError", "ConnectionFailureError",
                    "InterfaceError") and type(current).__module__.startswith("asyncpg"):
            return True
        if isinstance(current, sa_exc.InterfaceError):
            return True
        if isinstance(current, sa_exc.OperationalError) or name == "OperationalError":
            text = str(current).lower()
            if any(marker in text for marker in _SQLITE_TRANSIENT):
                return True
            if "connection" in text and ("closed" in text or "lost" in text
                                         or "refused" in text or "reset" in text):
                return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def describe(error: BaseException) -> str:
    """A one-line account of a fault, for the log."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
