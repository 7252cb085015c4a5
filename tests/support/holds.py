"""Holding a node's journal writer: a write that blocks the writer's thread until released.

While the hold is on, every other write queues up behind it, so a test can
arrange what is *in flight* (submitted, not yet committed) when something else
happens, and then let the writer go.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from edda.journal.writes import Write

if TYPE_CHECKING:
    from edda import EddaApp


class _Block(Write[None], frozen=True):
    entered: threading.Event
    gate: threading.Event

    def apply(self, conn: object, ctx: object) -> None:
        self.entered.set()
        self.gate.wait(30)


class WriterHold:
    """``hold = WriterHold(app); hold.start()`` ... ``hold.release()``."""

    def __init__(self, app: EddaApp) -> None:
        writer = app._writer
        assert writer is not None, "the app must be running"
        self._writer = writer
        self._gate = threading.Event()
        self._entered = threading.Event()
        self._blocked: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Submit the blocking write and return once the writer holds on it."""
        self._blocked = self._writer.submit(_Block(self._entered, self._gate))
        if not await asyncio.to_thread(self._entered.wait, 10):
            raise AssertionError("the writer did not take the hold within 10 s")

    def queued(self) -> int:
        """How many writes wait behind the hold."""
        return self._writer._queue.qsize()

    def release(self) -> None:
        self._gate.set()
