"""The clock seam: every timer, deadline and timestamp of a node comes from one `Clock`.

`SystemClock` is the real one. `MockClock` (exported as `edda.testing.MockClock`)
stands still until a test moves it with `MockClock.advance`, which fires every
timer that falls due on the way: a three-day ``sleep`` is tested in milliseconds.
Leases are different: their expiry is judged by the database's clock, so that
hosts whose clocks disagree still agree on who is alive; a node only measures
its own heartbeat with this clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Where a node takes the time from."""

    def now(self) -> float:
        """Wall-clock time, UNIX seconds (what deadlines and timestamps are in)."""
        ...

    def monotonic(self) -> float:
        """Seconds that only go forward (for measuring intervals)."""
        ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` on the event loop once `now` reaches ``when``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _MockTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class MockClock:
    """A clock that moves only when told to (`advance`); for tests.

    Args:
        start: The wall-clock time it starts at (default: the real time now).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._offset = self._now - time.monotonic()
        self._timers: list[tuple[float, int, _MockTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._offset

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _MockTimer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        if when <= self._now:
            asyncio.get_running_loop().call_soon(self._fire_due)
        return timer

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        handle = self.call_at(self._now + seconds, wake)
        try:
            await woken
        finally:
            handle.cancel()

    def advance(self, seconds: float) -> None:
        """Move the time forward and fire, in order, every timer due by then.

        Raises:
            ValueError: If ``seconds`` is negative (time never goes back).
        """
        if seconds < 0:
            raise ValueError(f"a clock only goes forward; advance({seconds!r})")
        self._now += seconds
        self._fire_due()

    def _fire_due(self) -> None:
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()
