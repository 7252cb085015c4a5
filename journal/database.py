"""Database URLs and engines for SQLite and PostgreSQL.

A node keeps a **writer**, used only by the group-commit writer and migrations,
and a **reader** pool for replay and queries. Every write transaction is one
synchronous function run by `Database.write`, and every runtime read one run by
`Database.query`: on SQLite on dedicated threads with the standard driver, so a
whole batch or query costs one thread hop instead of one per statement, and a
cancelled caller cannot leave a connection half-used; on PostgreSQL through
``AsyncConnection.run_sync`` over asyncpg. (`Database.read` gives an async
connection for tools and tests.)
On SQLite the writer begins with ``BEGIN IMMEDIATE`` so that several processes
on one file queue for the write lock instead of failing on a lock upgrade; WAL
lets readers run beside it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from edda.journal.dialects import SqlDialect, dialect_of
from edda.journal.faults import describe, is_transient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

T = TypeVar("T")
log = logging.getLogger("edda.journal")

Dialect = Literal["sqlite", "postgresql"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_BUSY_TIMEOUT_S = 60.0
_SUPPORTED = "use 'sqlite:///path/to/file.db' or 'postgresql://user:pass@host:port/dbname'"


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A user's ``db_url`` resolved to the driver the runtime uses."""

    url: str
    dialect: Dialect


_warned_memory = False


def shown_url(db_url: str) -> str:
    """``db_url`` as errors and logs may show it: without its password."""
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except (ArgumentError, TypeError, ValueError):
        return "<a db_url that is not a URL>"


def memory_stand_in(db_url: str) -> tuple[str, Path] | None:
    """For an in-memory SQLite ``db_url`` (``sqlite:///:memory:``), the URL of a file in
    a new temporary folder that stands in for it, and that folder; else None.

    The runtime's connections (writer, readers, the wake-up bell) need one database
    they all open, so "in memory" is a private file the caller removes when done.
    It survives no crash: said once per process.
    """
    global _warned_memory
    try:
        url = make_url(db_url) if isinstance(db_url, str) else None
    except ArgumentError:
        return None
    if url is None or url.drivername.partition("+")[0] != "sqlite":
        return None
    if url.database not in (None, "", ":memory:"):
        return None
    folder = Path(tempfile.mkdtemp(prefix="edda-memory-"))
    if not _warned_memory:
        _warned_memory = True
        log.warning("db_url %r: an in-memory database keeps nothing after the process ends "
                    "or crashes; fine for tests, use a file ('sqlite:///edda.db') or "
                    "PostgreSQL for anything durable", db_url)
    return url.set(database=str(folder / "edda.db")).render_as_string(False), folder


def parse_db_url(db_url: str) -> DatabaseURL:
    """Resolve a ``db_url`` to its async driver URL.

    ``sqlite:///x.db`` uses aiosqlite and ``postgresql://`` (or ``postgres://``)
    uses asyncpg; the driver suffix may be given but is not needed.

    Raises:
        ValueError: If the URL is malformed, names an unsupported database or
            driver, is an in-memory SQLite database, or its directory is missing.
    """
    if not isinstance(db_url, str) or not db_url.strip():
        raise ValueError(f"db_url must be a non-empty string; {_SUPPORTED}")
    try:
        url = make_url(db_url)
    except ArgumentError as exc:
        raise ValueError(f"db_url {db_url!r} is not a database URL; {_SUPPORTED}") from exc
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ValueError(f"db_url driver {url.drivername!r} is not supported; {_SUPPORTED}")
        if not url.database or url.database == ":memory:":
            raise ValueError(
                f"db_url {db_url!r} is an in-memory SQLite database, which cannot survive "
                "a crash; give a file path such as 'sqlite:///edda.db'"
            )
        parent = Path(url.database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ValueError(f"db_url {db_url!r}: directory {str(parent)!r} does not exist")
        return DatabaseURL(url.set(drivername="sqlite+aiosqlite").render_as_string(False), "sqlite")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "asyncpg"):
            raise ValueError(
                f"db_url driver {url.drivername!r} is not supported; "
                "use 'postgresql://' (the asyncpg driver is used)"
            )
        if importlib.util.find_spec("asyncpg") is None:
            raise ImportError(
                "PostgreSQL needs the asyncpg driver: pip install "
                "'/path/to/edda-actors[postgresql]' (from your checkout, or 'edda-actors"
                "[postgresql] @ git+<repository URL>'; see the README's Install section)"
            )
        pg = url.set(drivername="postgresql+asyncpg").render_as_string(False)
        return DatabaseURL(pg, "postgresql")
    raise ValueError(f"db_url scheme {url.drivername!r} is not supported; {_SUPPORTED}")


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL; it stays so, and other connections see it.

    Changing the journal mode needs an exclusive lock and SQLite reports
    "database is locked" at once, without its busy handler, when connections
    race on a new file; so this retries for up to the busy timeout.
    """
    delay = 0.001
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
        except Exception as exc:  # sqlite3's or the aiosqlite adapter's OperationalError
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _sqlite_pragmas(engine: Engine, *, synchronous: str, begin: str,
                    busy_timeout: float = _BUSY_TIMEOUT_S) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _enable_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


class Database:
    """The writer and reader of one database."""

    def __init__(
        self,
        reader: AsyncEngine,
        dialect: Dialect,
        *,
        async_writer: AsyncEngine | None = None,
        sync_writer: Engine | None = None,
        sync_reader: Engine | None = None,
        inline_reader: Engine | None = None,
        read_slots: int = 5,
        user_engine: Callable[[], AsyncEngine] | None = None,
    ) -> None:
        self.reader = reader
        self._make_user_engine = user_engine
        self._user_engine: AsyncEngine | None = None
        self.dialect: Dialect = dialect
        #: The SQL differences of this database (`edda.journal.dialects`).
        self.sql: SqlDialect = dialect_of(dialect)
        self._async_writer = async_writer
        self._sync_writer = sync_writer
        self._thread: ThreadPoolExecutor | None = None
        # Readers queue here, in asyncio and without a deadline, rather than in
        # the pool, whose checkout timeout would turn a burst into failures.
        self._read_slots = asyncio.Semaphore(read_slots)
        self._sync_reader = sync_reader
        self._inline_reader = inline_reader
        self._read_threads: ThreadPoolExecutor | None = None
        if sync_reader is not None:
            self._read_threads = ThreadPoolExecutor(read_slots, thread_name_prefix="edda-sqlite-reader")
        if sync_writer is not None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="edda-sqlite-writer")

    @classmethod
    def open(
        cls,
        db_url: str,
        *,
        sqlite_synchronous: str = "FULL",
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30,
        pool_recycle: int = 3600,
        pool_pre_ping: bool = True,
    ) -> Database:
        """Create the engines (no connection is made yet).

        Raises:
            ValueError: As `parse_db_url`, or for an unknown ``sqlite_synchronous``.
        """
        parsed = parse_db_url(db_url)
        if parsed.dialect == "sqlite":
            mode = str(sqlite_synchronous).upper()
            if mode not in _SYNCHRONOUS:
                raise ValueError(
                    f"sqlite_synchronous={sqlite_synchronous!r} is not one of {_SYNCHRONOUS}"
                )
            writer = create_engine(
                parsed.url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1),
                pool_size=1, max_overflow=0, connect_args={"timeout": _BUSY_TIMEOUT_S,
                                                           "check_same_thread": False},
            )
            _sqlite_pragmas(writer, synchronous=mode, begin="BEGIN IMMEDIATE")
            reader = create_async_engine(
                parsed.url, pool_size=max(1, pool_size), max_overflow=0,
                connect_args={"timeout": _BUSY_TIMEOUT_S},
            )
            _sqlite_pragmas(reader.sync_engine, synchronous=mode, begin="BEGIN")
            sync_reader = create_engine(
                parsed.url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1),
                pool_size=max(1, pool_size), max_overflow=0,
                connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            _sqlite_pragmas(sync_reader, synchronous=mode, begin="BEGIN")
            # One connection for quick reads on the event loop itself: it never
            # waits for a lock (busy timeout 0); a busy database sends the read
            # to the reader threads instead.
            inline = create_engine(
                parsed.url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1),
                pool_size=1, max_overflow=0, connect_args={"check_same_thread": False},
            )
            _sqlite_pragmas(inline, synchronous=mode, begin="BEGIN", busy_timeout=0)

            def sqlite_user_engine() -> AsyncEngine:
                # A user transaction takes the write lock at its first statement: a
                # read-then-write transaction cannot fail to upgrade its lock.
                engine = create_async_engine(parsed.url, pool_size=max(1, pool_size),
                                             max_overflow=0,
                                             connect_args={"timeout": _BUSY_TIMEOUT_S})
                _sqlite_pragmas(engine.sync_engine, synchronous=mode, begin="BEGIN IMMEDIATE")
                return engine

            return cls(reader, "sqlite", sync_writer=writer, sync_reader=sync_reader,
                       inline_reader=inline, read_slots=max(1, pool_size),
                       user_engine=sqlite_user_engine)
        pool = {
            "pool_timeout": pool_timeout,
            "pool_recycle": pool_recycle,
            "pool_pre_ping": pool_pre_ping,
        }
        async_writer = create_async_engine(parsed.url, pool_size=2, max_overflow=0, **pool)
        reader = create_async_engine(
            parsed.url, pool_size=pool_size, max_overflow=max_overflow, **pool
        )
        return cls(reader, "postgresql", async_writer=async_writer,
                   read_slots=max(1, pool_size + max_overflow),
                   user_engine=lambda: create_async_engine(
                       parsed.url, pool_size=pool_size, max_overflow=max_overflow, **pool))

    async def query(self, reads: Callable[[Connection], T], *, quick: bool = False,
                    patient: bool = False) -> T:
        """Run ``reads`` (synchronous) on a reader connection and return its result.

        On SQLite this runs on a reader thread: a whole query costs one thread hop,
        and cancelling the caller cannot leave a connection half-used. A ``quick``
        read (a few indexed rows, on a hot path) runs on the event loop instead,
        which saves the hop; should the database be busy, it goes to a thread.
        A ``patient`` read waits out a database that is unavailable (see
        `edda.journal.faults`), trying again with a growing pause until it answers.
        """
        if not patient:
            return await self._query(reads, quick)
        delay, since = 0.05, None
        while True:
            try:
                result = await self._query(reads, quick)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if since is None:
                    since = time.monotonic()
                    log.warning("a read waits for the database to come back (%s)",
                                describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if since is not None:
                log.info("a read went through after the database was away for %.1f s",
                         time.monotonic() - since)
            return result

    async def _query(self, reads: Callable[[Connection], T], quick: bool) -> T:
        if quick and self._inline_reader is not None:
            try:
                with self._inline_reader.connect() as conn:
                    return reads(conn)
            except OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
        if self._sync_reader is not None:
            assert self._read_threads is not None
            engine = self._sync_reader

            def run() -> T:
                with engine.connect() as conn:
                    return reads(conn)

            return await asyncio.get_running_loop().run_in_executor(self._read_threads, run)
        async with self._read_slots, self.reader.connect() as aconn:
            return await aconn.run_sync(reads)

    async def open_quick_reader(self) -> None:
        """Connect the quick reader off the event loop (its first connect may
        wait for the database), so that quick reads never block on connecting."""
        inline = self._inline_reader
        if inline is not None:
            assert self._read_threads is not None
            await asyncio.get_running_loop().run_in_executor(
                self._read_threads, lambda: inline.connect().close())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A reader connection; waits for a free one however long a burst lasts."""
        async with self._read_slots, self.reader.connect() as conn:
            yield conn

    async def write(self, transaction: Callable[[Connection], T]) -> T:
        """Run ``transaction`` in one write transaction; commit if it returns.

        Raises:
            Exception: Whatever ``transaction`` or the database raised (rolled back).
        """
        if self._sync_writer is not None:
            assert self._thread is not None
            engine = self._sync_writer

            def run() -> T:
                with engine.begin() as conn:
                    return transaction(conn)

            return await asyncio.get_running_loop().run_in_executor(self._thread, run)
        assert self._async_writer is not None
        async with self._async_writer.begin() as aconn:
            return await aconn.run_sync(transaction)

    def user_engine(self) -> AsyncEngine:
        """The engine of users' own transactions (``ctx.session``), made on first use.

        Separate from the journal's writer and readers, so that a long user
        transaction never holds a connection the runtime needs.
        """
        if self._user_engine is None:
            assert self._make_user_engine is not None
            self._user_engine = self._make_user_engine()
        return self._user_engine

    async def dispose(self) -> None:
        """Close every pooled connection and the writer thread."""
        if self._user_engine is not None:
            await self._user_engine.dispose()
            self._user_engine = None
        if self._sync_writer is not None:
            assert self._thread is not None
            await asyncio.get_running_loop().run_in_executor(self._thread,
                                                             self._sync_writer.dispose)
            self._thread.shutdown(wait=True)
        if self._sync_reader is not None:
            assert self._read_threads is not None
            self._read_threads.shutdown(wait=True)
            self._sync_reader.dispose()
        if self._inline_reader is not None:
            self._inline_reader.dispose()
        if self._async_writer is not None:
            await self._async_writer.dispose()
        await self.reader.dispose()
