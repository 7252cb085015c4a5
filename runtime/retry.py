"""Retry policies for activities, with Edda's defaults and delay formula."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RetryPolicy:
    """How an activity is retried.

    Delay before attempt ``n + 1``:
    ``min(initial_interval * backoff_coefficient ** (n - 1), max_interval)``.
    ``non_retryable_error_types`` win over ``retryable_error_types``.
    `TerminalError` is never retried.
    """

    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0
    max_attempts: int | None = 5
    max_duration: float | None = 300.0
    retryable_error_types: tuple[type[Exception], ...] = (Exception,)
    non_retryable_error_types: tuple[type[Exception], ...] = ()

    def __post_init__(self) -> None:
        if self.initial_interval < 0 or self.max_interval < 0:
            raise ValueError("RetryPolicy intervals must not be negative")
        if self.backoff_coefficient < 1:
            raise ValueError("RetryPolicy.backoff_coefficient must be at least 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1 (or None)")
        if self.max_duration is not None and self.max_duration < 0:
            raise ValueError("RetryPolicy.max_duration must not be negative (or None)")

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried under this policy."""
        from edda.runtime.errors import TerminalError

        if isinstance(error, TerminalError):
            return False
        if self.non_retryable_error_types and isinstance(error, self.non_retryable_error_types):
            return False
        return isinstance(error, self.retryable_error_types)

    def stop_reason(self, error: Exception, attempt: int, elapsed: float) -> str | None:
        """Why failed attempt number ``attempt`` is the last one, or None to retry."""
        if not self.is_retryable(error):
            return f"Error type {type(error).__name__} is not retryable"
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return f"Max attempts ({self.max_attempts}) reached"
        if self.max_duration is not None and elapsed >= self.max_duration:
            return f"Max duration ({self.max_duration}s) exceeded (elapsed: {elapsed:.1f}s)"
        return None

    def calculate_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        return float(min(delay, self.max_interval))


DEFAULT_RETRY_POLICY = RetryPolicy()
AGGRESSIVE_RETRY = RetryPolicy(0.1, 1.5, 10.0, 10, 60.0)
CONSERVATIVE_RETRY = RetryPolicy(5.0, 2.0, 300.0, 3, 900.0)
INFINITE_RETRY = RetryPolicy(1.0, 2.0, 60.0, None, None)


@dataclass
class RetryMetadata:
    """What happened across the attempts of one activity call."""

    total_attempts: int = 0
    total_duration_ms: int = 0
    exhausted: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_error: dict[str, Any] | None = None

    def add_attempt(self, attempt: int, error: BaseException) -> None:
        """Record a failed attempt."""
        import time

        info = {
            "attempt": attempt,
            "error_type": type(error).__name__,
            "message": str(error),
            "timestamp_ms": int(time.time() * 1000),
        }
        self.total_attempts = attempt
        self.errors.append(info)
        self.last_error = {"error_type": info["error_type"], "message": info["message"]}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "total_attempts": self.total_attempts,
            "total_duration_ms": self.total_duration_ms,
            "exhausted": self.exhausted,
            "errors": list(self.errors),
            "last_error": self.last_error,
        }
