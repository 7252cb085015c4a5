"""Durable timers: `sleep` and `sleep_until` (and Edda's aliases).

Each call takes its position when it is made, journals its deadline, and
returns once the deadline has passed, however many restarts lie in between.
A timer that fell due while no node ran fires as soon as one starts.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edda.runtime.context import WorkflowContext, require_context
from edda.runtime.waits import durable_wait

if TYPE_CHECKING:
    from collections.abc import Coroutine


def check_seconds(value: object, name: str) -> float:
    """A non-negative, finite number of seconds.

    Raises:
        TypeError: If ``value`` is not a number.
        ValueError: If it is negative, NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def sleep(ctx: WorkflowContext, seconds: float, timer_id: str | None = None
          ) -> Coroutine[Any, Any, None]:
    """Wait ``seconds`` durably; the workflow resumes after restarts if need be.

    Raises:
        TypeError: If ``seconds`` is not a number.
        ValueError: If ``seconds`` is negative or not finite.
    """
    require_context(ctx, "sleep")
    delay = check_seconds(seconds, "sleep seconds")
    position, call = ctx._reserve("sleep", timer_id)
    return _timer(ctx, position, call, "sleep", lambda now: now + delay)


def sleep_until(ctx: WorkflowContext, target_time: datetime, timer_id: str | None = None
                ) -> Coroutine[Any, Any, None]:
    """Wait durably until ``target_time`` (timezone-aware).

    Raises:
        TypeError: If ``target_time`` is not a datetime.
        ValueError: If ``target_time`` is naive.
    """
    require_context(ctx, "sleep_until")
    if not isinstance(target_time, datetime):
        raise TypeError(f"target_time must be a datetime, got {type(target_time).__name__}")
    if target_time.tzinfo is None or target_time.utcoffset() is None:
        raise ValueError("target_time must be timezone-aware")
    target = target_time.timestamp()
    position, call = ctx._reserve("sleep_until", timer_id)
    return _timer(ctx, position, call, "sleep_until", lambda now: target)


async def _timer(ctx: WorkflowContext, position: str, call: int, operation: str,
                 deadline: Any) -> None:
    await durable_wait(ctx, position, call, operation=operation, wait_type="timer", key=None,
                       deadline=deadline, status="waiting_for_timer")


#: Edda's backward-compatible names.
wait_timer = sleep
wait_until = sleep_until
