"""The in-process transport: anyio memory streams with NATS subject rules.

Each subscription owns a bounded buffer. A message that finds the buffer full is
dropped, which keeps a slow subscriber from stalling publishers and is allowed by
the at-most-once contract (the database sweep covers it). Queue groups deliver
each message to one member, round-robin, as nats-server does.
"""

from __future__ import annotations

import itertools
import math
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from edda.transports.base import (
    Message,
    NoRespondersError,
    Subscription,
    TransportClosedError,
)
from edda.transports.subjects import matches, validate_subject

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

_BUFFER = 10_000


@dataclass(eq=False)
class _InProcSubscription:
    subject: str
    tokens: list[str]
    queue: str | None
    send: MemoryObjectSendStream[Message]
    receive: MemoryObjectReceiveStream[Message]
    dropped: int = field(default=0)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        try:
            async for message in self.receive:
                yield message
        except anyio.ClosedResourceError:
            return

    async def next(self, timeout: float | None = None) -> Message:
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                return await self.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise TransportClosedError(f"subscription to {self.subject!r} is closed") from None


class InProcTransport:
    """A `Transport` within one process; the default for a single node."""

    def __init__(self) -> None:
        self._subs: list[_InProcSubscription] = []
        self._rr: dict[tuple[str, str], itertools.count[int]] = {}
        self._closed = False

    async def publish(
        self, subject: str, data: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Deliver ``data`` to every matching subscriber (one per queue group)."""
        self._deliver(subject, data, headers, reply=None)

    def _deliver(
        self, subject: str, data: bytes, headers: Mapping[str, str] | None, reply: str | None
    ) -> int:
        if self._closed:
            raise TransportClosedError("transport is closed")
        tokens = validate_subject(subject)
        message = Message(subject, bytes(data), dict(headers or {}), reply, self._respond)
        groups: dict[tuple[str, str], list[_InProcSubscription]] = {}
        delivered = 0
        for sub in self._subs:
            if not matches(sub.tokens, tokens):
                continue
            if sub.queue is None:
                delivered += self._offer(sub, message)
            else:
                groups.setdefault((sub.subject, sub.queue), []).append(sub)
        for key, members in groups.items():
            turn = next(self._rr.setdefault(key, itertools.count()))
            delivered += self._offer(members[turn % len(members)], message)
        return delivered

    @staticmethod
    def _offer(sub: _InProcSubscription, message: Message) -> int:
        try:
            sub.send.send_nowait(message)
        except anyio.WouldBlock:
            sub.dropped += 1
            return 0
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return 0
        return 1

    async def _respond(self, reply: str, data: bytes) -> None:
        self._deliver(reply, data, None, reply=None)

    @asynccontextmanager
    async def subscribe(
        self, subject: str, *, queue: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a subject pattern, optionally as a member of a queue group."""
        if self._closed:
            raise TransportClosedError("transport is closed")
        tokens = validate_subject(subject, pattern=True)
        send, receive = anyio.create_memory_object_stream[Message](_BUFFER)
        sub = _InProcSubscription(subject, tokens, queue, send, receive)
        self._subs.append(sub)
        try:
            yield sub
        finally:
            if sub in self._subs:
                self._subs.remove(sub)
            send.close()
            receive.close()

    async def request(self, subject: str, data: bytes, *, timeout: float) -> Message:
        """Send a request and wait for the first reply.

        Raises:
            NoRespondersError: At once, when nobody subscribes to ``subject``.
            TimeoutError: If nobody answers within ``timeout`` seconds.
        """
        inbox = f"_INBOX.{uuid.uuid4().hex}"
        async with self.subscribe(inbox) as sub:
            if self._deliver(subject, data, None, reply=inbox) == 0:
                raise NoRespondersError(f"no responders on {subject!r}")
            return await sub.next(timeout)

    async def aclose(self) -> None:
        """Close the transport and end every subscription's iteration."""
        self._closed = True
        for sub in self._subs:
            sub.send.close()
        self._subs.clear()
