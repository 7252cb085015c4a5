"""A transport for the processes of one database: in-process delivery, and the
same messages rung through to every other process over a *bell*.

Several processes on one database (several app servers, the workers of one ASGI
server) need to tell each other at once that something was committed for an
instance the other one runs, and when they join or leave. `BridgedTransport`
delivers a publish to this process's subscribers at once, as `InProcTransport`
does, and hands it to its bell, which carries it to the other processes:
PostgreSQL's LISTEN/NOTIFY (`PgBell`), or, for SQLite, datagram sockets between
the processes on the host (`SocketBell`). Each process delivers what it hears to
its own subscribers. Publishes queued while a batch is being sent go together in
the next one, so a burst costs a few notifications, not one per message.

Like every transport it is at-most-once: a process that is not listening (it
restarts, its bell reconnects) misses what was rung meanwhile, and the database
sweep finds it. Requests and replies stay within the process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Protocol

import msgspec

from edda.transports.inproc import InProcTransport

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger("edda.transports")

#: How long closing waits for what is still queued to be rung.
_LAST_RINGS = 1.0


class Bell(Protocol):
    """Carries opaque payloads to the other processes of one database."""

    #: The largest payload one ring may carry.
    max_payload: int

    async def start(self, heard: Callable[[bytes], None]) -> None:
        """Start listening; ``heard`` gets each payload another process rang."""
        ...

    async def ring(self, payload: bytes) -> None:
        """Send ``payload`` to every other listening process (best effort)."""
        ...

    async def aclose(self) -> None: ...


class _Batch(msgspec.Struct, array_like=True):
    """What one ring carries: who rang it, and (subject, data) pairs."""

    origin: str
    messages: list[tuple[str, bytes]]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Batch)


def _batches(origin: str, messages: list[tuple[str, bytes]], limit: int) -> list[bytes]:
    """Encode ``messages`` into as few payloads of at most ``limit`` bytes as fit."""
    payloads: list[bytes] = []
    chunk: list[tuple[str, bytes]] = []
    size = len(origin) + 16
    for subject, data in messages:
        cost = len(subject) + (len(data) * 4) // 3 + 16
        if chunk and size + cost > limit:
            payloads.append(_encoder.encode(_Batch(origin, chunk)))
            chunk, size = [], len(origin) + 16
        chunk.append((subject, data))
        size += cost
    if chunk:
        payloads.append(_encoder.encode(_Batch(origin, chunk)))
    fitting = [p for p in payloads if len(p) <= limit]
    if len(fitting) < len(payloads):
        log.warning("a transport message too big to reach other processes was kept to "
                    "this one; they find what it announced at their next sweep")
    return fitting


class BridgedTransport(InProcTransport):
    """`InProcTransport` whose publishes also reach the other processes on ``bell``."""

    def __init__(self, bell: Bell) -> None:
        super().__init__()
        self._bell = bell
        self._origin = uuid.uuid4().hex[:16]
        self._outgoing: list[tuple[str, bytes]] = []
        self._ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        #: Payloads heard from other processes, and those that could not be read.
        self.heard = 0
        self.garbled = 0

    async def start(self) -> None:
        """Start listening to the other processes and sending to them. A bell that
        cannot start (no room for its socket, no connection to spare) leaves the
        transport in-process only, and says so: other processes then hear of this
        one's news at their sweeps."""
        if self._sender is not None:
            return
        try:
            await self._bell.start(self._heard)
        except Exception as exc:
            log.warning("cannot reach the other processes on this database (%s); their "
                        "wake-ups arrive with the recovery sweep", exc)
            await self._bell.aclose()
            return
        self._sender = asyncio.create_task(self._send(), name="edda-bell-sender")

    @property
    def ringing(self) -> bool:
        """Whether publishes reach the other processes (the bell started)."""
        return self._sender is not None

    async def publish(
        self, subject: str, data: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Deliver to this process's subscribers now, and to the other processes'
        with the next ring."""
        self._deliver(subject, data, headers, reply=None)
        if self._sender is not None:
            self._outgoing.append((subject, bytes(data)))
            self._ready.set()

    async def _send(self) -> None:
        while not (self._closing and not self._outgoing):
            await self._ready.wait()
            self._ready.clear()
            messages, self._outgoing = self._outgoing, []
            for payload in _batches(self._origin, messages, self._bell.max_payload):
                try:
                    await self._bell.ring(payload)
                except Exception:
                    log.warning("could not reach the other processes; they find what "
                                "this message announced at their next sweep", exc_info=True)

    def _heard(self, payload: bytes) -> None:
        try:
            batch = _decoder.decode(payload)
        except msgspec.DecodeError:
            self.garbled += 1
            return
        if batch.origin == self._origin:
            return
        self.heard += 1
        for subject, data in batch.messages:
            try:
                self._deliver(subject, data, None, reply=None)
            except Exception:  # closed meanwhile, or a subject this side rejects
                self.garbled += 1

    async def aclose(self) -> None:
        """Ring what is still queued (for at most a second: a node that leaves
        announces it last), stop listening, then close every subscription."""
        sender, self._sender = self._sender, None
        if sender is not None:
            self._closing = True
            self._ready.set()
            try:
                await asyncio.wait_for(sender, _LAST_RINGS)
            except (TimeoutError, Exception):
                pass
        await self._bell.aclose()
        await super().aclose()
