"""Exceptions users can catch or see."""

from __future__ import annotations


class TerminalError(Exception):
    """An error that must not be retried; the activity fails at once."""


class RetryExhaustedError(Exception):
    """An activity failed on every attempt its retry policy allowed.

    ``__cause__`` holds the last attempt's error.
    """


class NonDeterminismError(Exception):
    """The workflow code asked for a different durable operation than its journal records.

    Raised when replaying a journal written by other code. The instance is parked
    as failed with this error; it is never given another operation's result.
    """

    def __init__(self, instance_id: str, position: str, recorded: str, requested: str) -> None:
        super().__init__(
            f"workflow instance {instance_id!r} is not deterministic at {position}: "
            f"the journal records {recorded}, but the code now asks for {requested}. "
            "Workflow code must make the same durable calls in the same order on replay; "
            "deploy changed code under a new workflow name or let old instances finish first"
        )
        self.instance_id = instance_id
        self.position = position
        self.recorded = recorded
        self.requested = requested


class WorkflowCancelledException(Exception):
    """The workflow instance was cancelled."""


class InstanceTakenOverError(RuntimeError):
    """Another node took the instance over while this node ran it.

    ``start()`` and ``wait_result()`` no longer raise it: they follow the instance
    to the node that runs it now. It stays importable for code that catches it.
    """


class WorkflowNotInitializedError(RuntimeError):
    """A workflow was started before any EddaApp was initialised."""
