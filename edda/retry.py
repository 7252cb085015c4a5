"""Edda's ``edda.retry`` module: retry policies and their presets."""

from edda.runtime.errors import RetryExhaustedError as RetryExhaustedError
from edda.runtime.errors import TerminalError as TerminalError
from edda.runtime.retry import AGGRESSIVE_RETRY as AGGRESSIVE_RETRY
from edda.runtime.retry import CONSERVATIVE_RETRY as CONSERVATIVE_RETRY
from edda.runtime.retry import DEFAULT_RETRY_POLICY as DEFAULT_RETRY_POLICY
from edda.runtime.retry import INFINITE_RETRY as INFINITE_RETRY
from edda.runtime.retry import RetryMetadata as RetryMetadata
from edda.runtime.retry import RetryPolicy as RetryPolicy

__all__ = (
    "AGGRESSIVE_RETRY",
    "CONSERVATIVE_RETRY",
    "DEFAULT_RETRY_POLICY",
    "INFINITE_RETRY",
    "RetryExhaustedError",
    "RetryMetadata",
    "RetryPolicy",
    "TerminalError",
)
