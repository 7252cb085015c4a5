"""An actor's mailbox: the one way into a resident instance.

Every other task reaches a resident instance only by posting one of these
messages; its actor handles them one at a time, in the order they came. So a
wake-up, a cancel and a passivation of one instance are never handled at once,
and none of them can be lost between the decision to leave memory and leaving
it: what arrives while the actor leaves is noted, and the instance is woken
again once it has left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edda.journal.cancel import CancelOutcome, CancelRequest


@dataclass(frozen=True, slots=True)
class Wake:
    """Something may be there for a wait (an event, a message): look again."""


@dataclass(frozen=True, slots=True)
class TimerDue:
    """A wait's deadline has come (the node's clock)."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the instance.

    With ``reply``, the actor commits the request itself (``by``, ``at``) and
    answers there; with ``committed``, the request is already stored and the
    actor only applies it.
    """

    by: str
    at: float
    reply: asyncio.Future[CancelOutcome] | None = None
    committed: CancelRequest | None = None


@dataclass(frozen=True, slots=True)
class Passivate:
    """The actor has done nothing but wait for ``idle_seconds``: it may leave memory."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Leave memory now (the node stops, or lost its lease); the journal keeps everything."""


Message = Wake | TimerDue | Cancel | Passivate | Stop


class Signal:
    """A flag **one** task waits on and others set; `asyncio.Event` without its deque.

    A node keeps thousands of idle actors in memory, each with a signal per wait,
    so a signal holds at most one future: it serves a single waiter (the wait it
    belongs to). Use `asyncio.Event` where several tasks may wait.
    """

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        while not self._set:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Mailbox:
    """An ordered queue of messages; its actor takes them one at a time."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        # Made on first use, and a list: most actors never get a message at all.
        self._messages: list[Message] | None = None

    def __bool__(self) -> bool:
        return bool(self._messages)

    def post(self, message: Message) -> None:
        if self._messages is None:
            self._messages = [message]
        else:
            self._messages.append(message)

    def pop(self) -> Message:
        """The oldest message.

        Raises:
            IndexError: If the mailbox is empty.
        """
        if not self._messages:
            raise IndexError("the mailbox is empty")
        return self._messages.pop(0)

    def take_all(self) -> list[Message]:
        """Everything waiting in the mailbox, now."""
        taken, self._messages = self._messages or [], None
        return taken
