"""Gates that hold a workflow inside an activity until the test says so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class Gate:
    """An activity calls ``await gate.hold()``; the test waits on ``reached``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self._open.wait()

    def open(self) -> None:
        self._open.set()


async def wait_for(event: asyncio.Event, timeout: float = 10.0) -> None:
    """Wait for ``event``, failing the test with a clear message on timeout."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"condition not reached within {timeout}s") from None


async def settle(task: Awaitable[object]) -> BaseException | object:
    """The result or the exception of an awaitable."""
    try:
        return await task
    except BaseException as exc:
        return exc
