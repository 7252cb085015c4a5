"""The `Transport` protocol every implementation satisfies.

A transport is **at-most-once**: a published message reaches each matching
subscriber (or one member of each queue group) zero or one times. Nothing in the
runtime is true only because a transport said so; every message that matters is
written to the database first and a sweep finds what a lost message missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
    from contextlib import AbstractAsyncContextManager


class TransportClosedError(RuntimeError):
    """The transport was closed; no more messages can be sent or received."""


class NoRespondersError(TimeoutError):
    """A request found nobody subscribed to its subject (raised at once, without
    waiting for the timeout). On NATS this means the address's owner is not
    connected to the cluster."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a subscriber receives it."""

    subject: str
    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    reply: str | None = None
    _responder: Callable[[str, bytes], Awaitable[None]] | None = field(
        default=None, repr=False, compare=False
    )

    async def respond(self, data: bytes) -> None:
        """Answer a request.

        Raises:
            ValueError: If the message was not sent with `Transport.request`.
        """
        if self.reply is None or self._responder is None:
            raise ValueError(f"message on {self.subject!r} expects no reply")
        await self._responder(self.reply, data)


@runtime_checkable
class Subscription(Protocol):
    """An async iterator over the messages of one subscription."""

    @property
    def subject(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def next(self, timeout: float | None = None) -> Message:
        """The next message.

        Raises:
            TimeoutError: If none arrives within ``timeout`` seconds.
            TransportClosedError: If the subscription or transport was closed.
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """At-most-once publish/subscribe with queue groups and request/reply."""

    async def publish(
        self, subject: str, data: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None: ...

    def subscribe(
        self, subject: str, *, queue: str | None = None
    ) -> AbstractAsyncContextManager[Subscription]: ...

    async def request(self, subject: str, data: bytes, *, timeout: float) -> Message: ...

    async def aclose(self) -> None: ...
