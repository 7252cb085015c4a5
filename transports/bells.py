"""Bells: how `BridgedTransport` reaches the other processes of one database.

- `PgBell`: PostgreSQL's LISTEN/NOTIFY on one channel, over two connections of
  its own (one listens, one notifies). Notifications are sent after the commit
  that caused them, by whoever published; every listening process hears them.
- `SocketBell`: for several processes on one SQLite file, which share a host. Each
  process binds a Unix datagram socket in a directory named after the database
  file and rings every socket it finds there; a socket left by a process that
  died is removed by the first process that finds it refusing.

Both lose what is rung while a process is not listening, which the transport
contract allows: the database sweep finds what a lost message announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("edda.transports")

#: How often a bell checks its connections, and waits before reconnecting.
_CHECK_EVERY = 1.0


class PgBell:
    """LISTEN/NOTIFY on ``channel`` of the PostgreSQL database at ``dsn``."""

    #: PostgreSQL refuses notification payloads of 8000 bytes or more.
    max_payload = 7900

    def __init__(self, dsn: str, channel: str = "edda_bell") -> None:
        self._dsn = dsn
        self._channel = channel
        self._listen: Any = None
        self._send: Any = None
        self._heard: Callable[[bytes], None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._down = False

    async def start(self, heard: Callable[[bytes], None]) -> None:
        self._heard = heard
        await self._connect()
        self._keeper = asyncio.create_task(self._keep(), name="edda-pg-bell")

    async def _connect(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        listen = await asyncpg.connect(self._dsn)
        try:
            await listen.add_listener(self._channel, self._notified)
            send = await asyncpg.connect(self._dsn)
        except BaseException:
            await listen.close()
            raise
        self._listen, self._send = listen, send

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._heard is not None:
            self._heard(payload.encode())

    async def _keep(self) -> None:
        """Reconnect whenever a connection is lost (the server restarted, a network
        fault): what was rung meanwhile is missed, as the contract allows."""
        while True:
            await asyncio.sleep(_CHECK_EVERY)
            if not (self._listen is None or self._listen.is_closed()
                    or self._send is None or self._send.is_closed()):
                continue
            await self._close()
            try:
                await self._connect()
            except Exception as exc:
                if not self._down:
                    log.warning("LISTEN/NOTIFY connection lost (%s); other processes' "
                                "wake-ups arrive with the sweep until it is back", exc)
                self._down = True
                continue
            if self._down:
                log.warning("LISTEN/NOTIFY connection is back")
            self._down = False

    async def ring(self, payload: bytes) -> None:
        send = self._send
        if send is None or send.is_closed():
            raise ConnectionError("the NOTIFY connection is down")
        await send.execute("SELECT pg_notify($1, $2)", self._channel, payload.decode())

    async def _close(self) -> None:
        for conn in (self._listen, self._send):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2.0)
        self._listen = self._send = None

    async def aclose(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        await self._close()


def bell_directory(database: str) -> Path:
    """Where the processes of the SQLite file ``database`` bind their sockets: beside
    it, or (when that path is too long for a socket) under the temporary directory."""
    path = Path(database).expanduser().resolve()
    beside = path.with_name(f".{path.name}.bell")
    if len(str(beside)) + 40 <= 100:  # sun_path holds 108 bytes
        return beside
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"edda-bell-{digest}"


class SocketBell:
    """Unix datagram sockets in ``directory``, one per process."""

    max_payload = 60_000

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._path = directory / f"{uuid.uuid4().hex}.sock"
        self._in: socket.socket | None = None
        self._out: socket.socket | None = None
        self._heard: Callable[[bytes], None] | None = None
        #: Rings a full receiver dropped.
        self.dropped = 0

    async def start(self, heard: Callable[[bytes], None]) -> None:
        self._heard = heard
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            for attempt in range(10):
                try:  # the last process may remove the folder at any moment
                    self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                    sock.bind(str(self._path))
                    break
                except (FileNotFoundError, FileExistsError):
                    if attempt == 9:
                        raise
        except BaseException:
            sock.close()
            raise
        self._in = sock
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._in is not None and self._heard is not None
        while True:
            try:
                data = self._in.recv(self.max_payload + 1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if data:  # an empty datagram only checks that this process is alive
                self._heard(data)

    async def ring(self, payload: bytes) -> None:
        if self._out is not None:
            self._send_all(self._out, payload)

    def _send_all(self, out: socket.socket, payload: bytes) -> None:
        """Send ``payload`` to every other process's socket; unlink those whose
        process is gone."""
        own = self._path.name
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return
        for entry in entries:
            if not entry.name.endswith(".sock") or entry.name == own:
                continue
            try:
                out.sendto(payload, entry.path)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # its queue is full: at most once
            except ConnectionRefusedError:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # its process died without removing it
            except OSError:
                continue

    async def aclose(self) -> None:
        if self._in is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._in.fileno())
            self._in.close()
            self._in = None
            with contextlib.suppress(OSError):
                self._path.unlink()
        out, self._out = self._out, None
        if out is not None:
            try:
                self._send_all(out, b"")  # unlinks the sockets of processes that died
            finally:
                out.close()
        with contextlib.suppress(OSError):
            self._dir.rmdir()  # the last process of the database leaves no folder
