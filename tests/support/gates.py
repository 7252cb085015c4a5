"""Gates that hold a workflow inside an activity until the test says so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Gate:
    """An activity calls ``await gate.hold()``; the test waits on ``reached``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.holds = 0
        self._open = asyncio.Event()

    async def hold(self) -> None:
        self.holds += 1
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


async def wait_until(predicate: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 10.0) -> None:
    """Poll an async condition until it holds, failing clearly on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def settle(task: Awaitable[object]) -> BaseException | object:
    """The result or the exception of an awaitable."""
    try:
        return await task
    except BaseException as exc:
        return exc
