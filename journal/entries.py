"""Journal entry types: frozen msgspec structs with permanent tags.

Tags are stored in every row and are never renamed. A field added later gets a
default so that rows written before it still decode. User values inside an
entry (inputs, results, error arguments) are already JSON-compatible: the
runtime converts them before it builds an entry.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An exception as recorded: enough to raise it again as its own type."""

    module: str
    qualname: str
    message: str
    args: list[Any] = []
    traceback: str = ""
    cause: ErrorInfo | None = None


class _Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    pass


class WorkflowStarted(_Entry, tag="workflow_started", frozen=True):
    """The first entry of every journal (seq 0)."""

    workflow_name: str
    input: dict[str, Any]
    continued_from: str | None = None


class ActivityCompleted(_Entry, tag="activity_completed", frozen=True):
    """An activity returned; ``call`` is the order in which the workflow made the call."""

    position: str
    call: int
    activity_name: str
    result: Any = None
    result_type: str | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    attempts: int = 1


class ActivityFailed(_Entry, tag="activity_failed", frozen=True):
    """An activity failed for good (terminal error or retries exhausted)."""

    position: str
    call: int
    activity_name: str
    error: ErrorInfo
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    attempts: int = 1


class WorkflowCompleted(_Entry, tag="workflow_completed", frozen=True):
    """The workflow function returned."""

    result: Any = None


class WorkflowFailed(_Entry, tag="workflow_failed", frozen=True):
    """The workflow function raised, or the runtime gave up on the instance."""

    error: ErrorInfo


Entry = WorkflowStarted | ActivityCompleted | ActivityFailed | WorkflowCompleted | WorkflowFailed

#: Entries that reserve a position of the workflow's durable calls.
CallEntry = ActivityCompleted | ActivityFailed

#: Entries after which an instance never runs again.
TERMINAL_KINDS = frozenset({"workflow_completed", "workflow_failed"})


def kind_of(entry: Entry) -> str:
    """The permanent tag of an entry, as stored in the ``kind`` column."""
    tag = type(entry).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
