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


@dataclass(frozen=True, slots=True)
class BodyEnded:
    """The workflow's own task finished (posted by the actor to itself)."""


Message = Wake | TimerDue | Cancel | Passivate | Stop | BodyEnded


class Mailbox:
    """An unbounded, ordered queue of messages; posting never blocks."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message] = asyncio.Queue()

    def post(self, message: Message) -> None:
        self._queue.put_nowait(message)

    async def get(self) -> Message:
        return await self._queue.get()

    def take_all(self) -> list[Message]:
        """Everything waiting in the mailbox, now."""
        taken: list[Message] = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken
