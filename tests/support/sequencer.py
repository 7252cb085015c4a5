"""Force the order of a race between asyncio tasks, without sleeping.

An asyncio take on trio's ``testing.Sequencer``. Each numbered block waits for
every lower-numbered block to finish, so a test states the interleaving it wants
and gets it under any scheduling. A block that waits for a number nobody ever
runs fails after ``timeout`` seconds with a message naming that number instead
of hanging the test; a block that raises (or is cancelled) breaks the sequencer,
so the blocks behind it fail at once instead of timing out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Sequencer:
    """Run ``async with seq(n)`` blocks in the order of ``n``, across tasks.

    Example::

        seq = Sequencer()

        async def writer() -> None:
            async with seq(0):
                await journal.append(entry)    # runs first
            async with seq(2):
                await journal.commit()         # runs last

        async def reader() -> None:
            async with seq(1):
                await journal.read()           # between the two writer blocks

    Positions start at 0, each is used once, and block ``n`` starts only after
    block ``n - 1`` has exited.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._next = 0
        self._claimed: set[int] = set()
        self._entered: set[int] = set()
        self._turns: dict[int, asyncio.Event] = {}
        self._broken: int | None = None

    def _turn(self, position: int) -> asyncio.Event:
        return self._turns.setdefault(position, asyncio.Event())

    async def _wait(self, position: int) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                while self._next != position and self._broken is None:
                    await self._turn(position).wait()
        except TimeoutError:
            missing = self._next
            where = "is stuck inside it" if missing in self._entered else "never entered it"
            raise TimeoutError(
                f"seq({position}) waited {self.timeout} s for seq({missing}): "
                f"the task meant to run seq({missing}) {where}"
            ) from None
        if self._broken is not None:
            raise RuntimeError(f"seq({position}) cannot run: seq({self._broken}) failed")

    @contextlib.asynccontextmanager
    async def __call__(self, position: int) -> AsyncIterator[None]:
        """Wait until blocks ``0 .. position - 1`` have run, then run this one.

        Raises:
            ValueError: ``position`` is negative or was already used.
            TimeoutError: an earlier block did not finish within ``timeout`` seconds.
            RuntimeError: an earlier block failed, timed out or was cancelled.
        """
        if position < 0 or position in self._claimed:
            raise ValueError(f"seq({position}): positions are used once, from 0 up")
        self._claimed.add(position)
        try:
            await self._wait(position)
            self._entered.add(position)
            yield
        except BaseException:
            # Whoever waits behind this position would only time out: fail them now.
            if self._broken is None:
                self._broken = position
            for event in self._turns.values():
                event.set()
            raise
        self._next = position + 1
        self._turn(position + 1).set()
