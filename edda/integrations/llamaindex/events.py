"""The events a LlamaIndex step returns to wait durably, and the one it resumes with.

They are real LlamaIndex `Event` subclasses, so steps can name them in their
annotations (``-> DurableSleepEvent | ProcessEvent``, ``ev: ResumeEvent``) and
LlamaIndex's step validation accepts the class. The runner handles the first two
itself: no step receives them.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator
from workflows.events import Event


class DurableSleepEvent(Event):
    """Return it from a step to sleep durably; a `ResumeEvent` follows.

    Attributes:
        seconds: How long to sleep; the timer survives crashes and restarts.
        resume_data: What the `ResumeEvent` carries as ``data`` (``{}`` if None).
    """

    seconds: float
    resume_data: dict[str, Any] | None = None

    @field_validator("seconds")
    @classmethod
    def _finite(cls, seconds: float) -> float:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        return seconds


class DurableWaitEvent(Event):
    """Return it from a step to wait durably for a CloudEvent; a `ResumeEvent` follows.

    Attributes:
        event_type: The CloudEvent ``type`` to wait for (as `edda.wait_event`).
        timeout_seconds: Give up after this long with `edda.EventTimeoutError`
            (None: wait for ever).
    """

    event_type: str
    timeout_seconds: float | None = None

    @field_validator("event_type")
    @classmethod
    def _named(cls, event_type: str) -> str:
        if not event_type:
            raise ValueError("event_type must be a non-empty string")
        return event_type

    @field_validator("timeout_seconds")
    @classmethod
    def _positive(cls, timeout: float | None) -> float | None:
        if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
            raise ValueError(f"timeout_seconds must be a finite number > 0 or None, "
                             f"got {timeout!r}")
        return timeout


class ResumeEvent(Event):
    """Sent to the steps that accept it once a durable sleep or wait is over.

    Attributes:
        data: The sleep's ``resume_data``, or the received CloudEvent's data.
    """

    data: Any = Field(default_factory=dict)
