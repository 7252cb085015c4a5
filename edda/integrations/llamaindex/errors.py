"""What the LlamaIndex runner raises."""

from __future__ import annotations

from edda.runtime.errors import TerminalError


class WorkflowExecutionError(Exception):
    """A LlamaIndex workflow could not go on: a step failed, or no step takes an event.

    Attributes:
        step_name: The step that failed, when one did. ``__cause__`` holds the
            step's own error (for retried steps, `edda.RetryExhaustedError`
            whose cause is the last attempt's error).
    """

    def __init__(self, message: str, step_name: str | None = None) -> None:
        super().__init__(message, step_name)
        self.message = message
        self.step_name = step_name

    def __str__(self) -> str:
        return self.message


class WorkflowReplayError(TerminalError):
    """The journal of a LlamaIndex run cannot be read back by the code now deployed.

    Raised when a recorded event or state names a class that can no longer be
    imported or validated; the instance fails instead of going on with other data.
    A `TerminalError`: a step that meets it is not retried, since reading the
    same record again would fail again.
    """
