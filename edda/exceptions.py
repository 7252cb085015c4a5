"""Edda's ``edda.exceptions`` module."""

from edda.runtime.errors import NonDeterminismError as NonDeterminismError
from edda.runtime.errors import RetryExhaustedError as RetryExhaustedError
from edda.runtime.errors import TerminalError as TerminalError
from edda.runtime.errors import WorkflowCancelledException as WorkflowCancelledException

__all__ = (
    "NonDeterminismError",
    "RetryExhaustedError",
    "TerminalError",
    "WorkflowCancelledException",
)
