"""Journal entry types: frozen msgspec structs with permanent tags.

Tags are stored in every row and are never renamed. A field added later gets a
default so that rows written before it still decode. User values inside an
entry (inputs, results, error arguments) are already JSON-compatible: the
runtime converts them before it builds an entry.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An exception as recorded: enough to raise it again as its own type."""

    module: str
    qualname: str
    message: str
    args: list[Any] = []
    #: The exception's own attributes (``self.code = 51``), as JSON data.
    attributes: dict[str, Any] = {}
    traceback: str = ""
    cause: ErrorInfo | None = None


class _Entry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="kind"):
    pass


class WorkflowStarted(_Entry, tag="workflow_started", frozen=True):
    """The first entry of every journal (seq 0)."""

    workflow_name: str
    input: dict[str, Any]
    continued_from: str | None = None
    #: Subscriptions carried over from the instance this one continues.
    subscriptions: list[dict[str, Any]] = []


class CompensationCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A compensation to run if the workflow fails or is cancelled: the registered
    function's name and the (JSON) arguments it will be called with after ``ctx``."""

    name: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class ActivityCompleted(_Entry, tag="activity_completed", frozen=True):
    """An activity returned; ``call`` is the order in which the workflow made the call.

    ``compensation`` is its ``@on_failure`` compensation, registered by this entry.
    """

    position: str
    call: int
    activity_name: str
    result: Any = None
    result_type: str | None = None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    attempts: int = 1
    compensation: CompensationCall | None = None
    #: When the first attempt began (clock seconds); the record's own time is its end.
    started_at: float | None = None
    #: The failed attempts before this outcome: attempt, error_type, message, timestamp_ms.
    failed_attempts: list[dict[str, Any]] = []


class ActivityFailed(_Entry, tag="activity_failed", frozen=True):
    """An activity failed for good (terminal error or retries exhausted)."""

    position: str
    call: int
    activity_name: str
    error: ErrorInfo
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    attempts: int = 1
    started_at: float | None = None
    failed_attempts: list[dict[str, Any]] = []


class WorkflowCompleted(_Entry, tag="workflow_completed", frozen=True):
    """The workflow function returned."""

    result: Any = None


class WorkflowFailed(_Entry, tag="workflow_failed", frozen=True):
    """The workflow function raised, or the runtime gave up on the instance;
    ``failed_compensations`` names the registrations whose compensation failed."""

    error: ErrorInfo
    failed_compensations: list[str] = []


class CompensationRegistered(_Entry, tag="compensation_registered", frozen=True):
    """``register_compensation`` in the workflow body."""

    position: str
    call: int
    compensation: CompensationCall


class CompensationsStarted(_Entry, tag="compensations_started", frozen=True):
    """The workflow failed with ``error``; its compensations run now, newest first.
    From here on a restart goes straight back to compensating."""

    error: ErrorInfo


class WorkflowCancelling(_Entry, tag="workflow_cancelling", frozen=True):
    """A cancel reached the instance; its compensations run now, newest first.
    From here on a restart goes straight back to compensating."""

    cancelled_by: str
    cancelled_at: float
    previous_status: str


class CompensationDone(_Entry, tag="compensation_done", frozen=True):
    """The compensation registered at ``registered_at`` (a position) ran, successfully
    or (``error`` set) for the last time its retry policy allowed."""

    registered_at: str
    name: str
    attempts: int = 1
    error: ErrorInfo | None = None


class WorkflowCancelled(_Entry, tag="workflow_cancelled", frozen=True):
    """The instance ended cancelled, after its compensations."""

    cancelled_by: str
    cancelled_at: float
    previous_status: str
    failed_compensations: list[str] = []


class WaitStarted(_Entry, tag="wait_started", frozen=True):
    """A durable wait began: ``wait_type`` "timer", or "event" of type ``key``, until
    ``deadline``.

    ``operation`` names the call for non-determinism checks (``"sleep"``,
    ``"wait_event 'order.paid'"``); ``deadline`` is UNIX seconds or None.
    """

    position: str
    call: int
    operation: str
    wait_type: str
    key: str | None = None
    deadline: float | None = None


class TimerFired(_Entry, tag="timer_fired", frozen=True):
    """A timer wait reached its deadline."""

    position: str
    call: int


class EventReceived(_Entry, tag="event_received", frozen=True):
    """An event was delivered to a wait; ``event`` holds its CloudEvent attributes."""

    position: str
    call: int
    event_id: int
    event: dict[str, Any]
    data_bytes: bytes | None = None


class WaitTimedOut(_Entry, tag="wait_timed_out", frozen=True):
    """An event wait reached its deadline with nothing delivered."""

    position: str
    call: int


class Subscribed(_Entry, tag="subscribed", frozen=True):
    """The workflow subscribed to ``channel`` (the name it used) in ``mode``; it
    receives what is published on ``address`` from ``since`` (UNIX seconds) on."""

    position: str
    call: int
    channel: str
    mode: str
    address: str
    since: float


class Unsubscribed(_Entry, tag="unsubscribed", frozen=True):
    """The workflow left ``channel``."""

    position: str
    call: int
    channel: str


class MessagePublished(_Entry, tag="message_published", frozen=True):
    """The workflow published a message (stored in the same transaction)."""

    position: str
    call: int
    channel: str
    message_id: str
    receiver_subscribed: bool = False
    direct: bool = False


class MessageReceived(_Entry, tag="message_received", frozen=True):
    """A channel message was delivered to a ``receive``."""

    position: str
    call: int
    channel: str
    message_id: str
    row_id: int
    data: Any = None
    data_bytes: bytes | None = None
    metadata: dict[str, Any] = {}
    published_at: float = 0.0


class TransactionCommitted(_Entry, tag="transaction_committed", frozen=True):
    """A ``ctx.transaction()`` block of the workflow body committed (with the
    user's writes and these outbox events, in the same transaction)."""

    position: str
    call: int
    event_ids: list[str] = []


class WorkflowRecurred(_Entry, tag="workflow_recurred", frozen=True):
    """The workflow continued as ``new_instance_id`` with a fresh journal."""

    new_instance_id: str
    input: dict[str, Any]


class WorkflowRetried(_Entry, tag="workflow_retried", frozen=True):
    """A failed instance was asked to run again from its last good step: the entries
    at ``superseded`` (its failure, and the activity failure that caused it) no
    longer count; the rest of its journal replays as before."""

    retried_by: str
    retried_at: float
    superseded: list[int]


class BodyEnded(_Entry, tag="body_ended", frozen=True):
    """The workflow body returned or raised, after ``calls`` durable calls, while
    other branches of it (a ``gather``'s steps) were still running activities.
    Those finish and are journaled after this entry; they start nothing new."""

    calls: int


#: Entries that belong to one of the workflow's durable calls.
CallEntry = (
    ActivityCompleted
    | ActivityFailed
    | WaitStarted
    | TimerFired
    | EventReceived
    | WaitTimedOut
    | Subscribed
    | Unsubscribed
    | MessagePublished
    | MessageReceived
    | CompensationRegistered
    | TransactionCommitted
)

#: Every journal entry: the workflow's own lifecycle and its durable calls.
Entry = (
    WorkflowStarted | WorkflowCompleted | WorkflowFailed | WorkflowRecurred
    | CompensationsStarted | WorkflowCancelling | CompensationDone | WorkflowCancelled
    | WorkflowRetried | BodyEnded | CallEntry
)

# Spelled out (not derived) so that isinstance() narrows for the type checker.
CALL_ENTRY_TYPES = (ActivityCompleted, ActivityFailed, WaitStarted, TimerFired, EventReceived,
                    WaitTimedOut, Subscribed, Unsubscribed, MessagePublished, MessageReceived,
                    CompensationRegistered, TransactionCommitted)
assert set(CALL_ENTRY_TYPES) == set(typing.get_args(CallEntry)), "keep in step with CallEntry"

#: Entries after which an instance never runs again.
TERMINAL_KINDS = frozenset({"workflow_completed", "workflow_failed", "workflow_recurred",
                            "workflow_cancelled"})


def kind_of(entry: Entry) -> str:
    """The permanent tag of an entry, as stored in the ``kind`` column."""
    tag = type(entry).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
