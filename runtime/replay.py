"""Replay rules: running a workflow instance from its journal to its end.

A durable call takes its position (``name:N``) and call number when it is
made. If the journal holds an entry for that call number, it must be the same
operation at the same position; the recorded outcome is returned without
running anything. Otherwise the operation runs and its entry is appended. Any
mismatch is a `NonDeterminismError`, which parks the instance as failed even if
user code catches it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from edda.actors.instance_journal import ActorStopped, InstanceJournal, WriteLost
from edda.journal.appends import InstanceChange
from edda.journal.cancel import CancelRequest
from edda.journal.codec import encode_json
from edda.journal.entries import (
    CALL_ENTRY_TYPES,
    ActivityCompleted,
    ActivityFailed,
    BodyEnded,
    CallEntry,
    CompensationCall,
    CompensationRegistered,
    CompensationsStarted,
    EventReceived,
    MessagePublished,
    MessageReceived,
    Subscribed,
    TransactionCommitted,
    Unsubscribed,
    WaitStarted,
    WorkflowCancelled,
    WorkflowCancelling,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowRecurred,
    WorkflowStarted,
)
from edda.journal.waits import EndAllWaits
from edda.runtime.context import Recurred, WorkflowContext
from edda.runtime.errors import NonDeterminismError
from edda.runtime.hooks import fire
from edda.runtime.saga import Outcome, Saga, cancelled_error, registered_compensations
from edda.runtime.serialization import (
    error_info,
    import_path,
    needs_restore,
    rebuild_error,
    restore,
    to_jsonable,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from edda.actors.instance import InstanceActor
    from edda.journal.clock import Clock
    from edda.journal.database import Database
    from edda.journal.records import Record
    from edda.journal.stores import Stores
    from edda.runtime.registry import Registry
    from edda.runtime.retry import RetryPolicy
    from edda.runtime.workflow import Workflow

log = logging.getLogger("edda.replay")


def operation_of(entry: CallEntry) -> str:
    """The operation a call entry records, as named in non-determinism errors."""
    match entry:
        case ActivityCompleted() | ActivityFailed():
            return f"activity {entry.activity_name!r}"
        case WaitStarted():
            return entry.operation
        case EventReceived():
            return f"wait_event {entry.event.get('type')!r}"
        case MessageReceived():
            return f"receive {entry.channel!r}"
        case Subscribed():
            return f"subscribe {entry.channel!r}"
        case Unsubscribed():
            return f"unsubscribe {entry.channel!r}"
        case MessagePublished():
            return "send_to" if entry.direct else f"publish {entry.channel!r}"
        case CompensationRegistered():
            return f"register_compensation {entry.compensation.name!r}"
        case TransactionCommitted():
            return "transaction"
    return type(entry).__name__


class ReplayIndex:
    """The recorded durable calls of a journal, by call number and by position.

    A call has one entry (an activity's outcome) or several (a wait's start,
    then what ended it), all at the same position.
    """

    def __init__(self, instance_id: str, records: list[Record]) -> None:
        self.instance_id = instance_id
        self.by_call: dict[int, list[CallEntry]] = {}
        self.by_position: dict[str, int] = {}
        #: The journal says the body ended with branches still in a step (`BodyEnded`,
        #: journaled once).
        self.body_ended = False
        for record in records:
            entry = record.entry
            if isinstance(entry, BodyEnded):
                self.body_ended = True
            elif isinstance(entry, CALL_ENTRY_TYPES):
                self.by_call.setdefault(entry.call, []).append(entry)
                self.by_position.setdefault(entry.position, entry.call)
        self.recorded_calls = max(self.by_call, default=-1) + 1

    def lookup(self, position: str, call: int, operation: str) -> list[CallEntry] | None:
        """The recorded entries of this call, or None if it has not happened yet.

        Raises:
            NonDeterminismError: If the journal records another operation for
                this call, or this position under another call number.
        """
        entries = self.by_call.get(call)
        if entries is not None:
            first = entries[0]
            recorded = operation_of(first)
            if first.position != position or recorded != operation:
                raise NonDeterminismError(
                    self.instance_id, position,
                    f"{recorded} at {first.position} (call #{call})",
                    f"{operation} at {position} (call #{call})",
                )
            return entries
        other = self.by_position.get(position)
        if other is not None:
            recorded = operation_of(self.by_call[other][0])
            raise NonDeterminismError(
                self.instance_id, position,
                f"{recorded} at {position} as call #{other}",
                f"{operation} at {position} as call #{call}",
            )
        return None


class RunHost(Protocol):
    """What the node offers a running instance (implemented by `InstanceRunner`)."""

    async def notify(self, instance_id: str) -> None: ...

    def outbox_written(self) -> None: ...

    def sibling_id(self, prefix: str, instance_id: str) -> str: ...

    async def until_leased(self, instance_id: str) -> None: ...

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None: ...


@dataclass(eq=False, slots=True)
class InstanceRun:
    """Everything one run of an instance needs besides user code."""

    #: The instance's actor (its run state) and the journal it appends to.
    actor: InstanceActor
    journal: InstanceJournal
    index: ReplayIndex
    default_retry_policy: RetryPolicy | None
    host: RunHost
    #: The node's stores, and its database (for the engine of ``ctx.session``).
    stores: Stores
    db: Database
    clock: Clock
    started_at: float
    #: The workflow being run and the node's registry (compensations, recur).
    workflow: Workflow[..., Any]
    registry: Registry
    service_name: str | None = None
    fatal: BaseException | None = field(default=None)
    #: Registered compensations, oldest first: (the position that registered it, call).
    compensations: list[tuple[str, CompensationCall]] = field(default_factory=list)


async def run_workflow(
    wf: Workflow[..., Any],
    actor: InstanceActor,
    *,
    worker_id: str,
    hooks: Any,
    default_retry_policy: RetryPolicy | None,
    host: RunHost,
    stores: Stores,
    db: Database,
    clock: Clock,
    registry: Registry,
    service_name: str | None = None,
) -> Outcome:
    """Replay and run one instance until it completes, fails or is cancelled (the
    body of its actor).

    If the actor starts with a cancel already stored for the instance, the body is
    not run again: the compensations run at once.

    Raises:
        ActorStopped: If the node lost the instance; nothing more was written.
    """
    journal = actor.journal
    started = journal.records[0].entry
    if not isinstance(started, WorkflowStarted):
        raise RuntimeError(f"journal of {journal.instance_id!r} does not begin with "
                           "WorkflowStarted")
    finished = _recorded_outcome(journal)
    if finished is not None:
        return finished
    await fire(hooks, "on_workflow_activated", journal.instance_id, wf.name, started.input,
               journal.records[0].created_at)
    run = InstanceRun(actor, journal, ReplayIndex(journal.instance_id, journal.records),
                      default_retry_policy, host, stores, db, clock,
                      journal.records[0].created_at, wf, registry, service_name)
    run.compensations = registered_compensations(journal.records)
    ctx = WorkflowContext(run, worker_id=worker_id, hooks=hooks)
    for carried in started.subscriptions:
        ctx._subscriptions[carried["channel"]] = (carried["mode"], carried["address"],
                                                  carried["since"])
    saga = Saga(run, ctx, wf.name, hooks)
    phase = _compensation_phase(journal.records)
    if isinstance(phase, WorkflowCancelling):  # a restart while compensating
        return await saga.cancelled(CancelRequest(phase.cancelled_by, phase.cancelled_at,
                                                  phase.previous_status), journaled=True)
    if isinstance(phase, CompensationsStarted):
        return await saga.failed(rebuild_error(phase.error), phase.error, journaled=True)
    if actor.cancel is not None:
        return await saga.cancelled(actor.cancel)
    try:
        arguments = wf.build_arguments(started.input)
        result = await wf.func(ctx, **arguments)
        await _end_body(run, ctx)  # what is left of it (a gather's other steps) winds down
        if run.fatal is not None:
            raise run.fatal
        cancel = await actor.finish()
        if cancel is None:
            stored = to_jsonable(result, what=f"result of workflow {wf.name!r}")
    except (ActorStopped, WriteLost, asyncio.CancelledError):
        raise
    except Recurred as recurred:
        await _end_body(run, ctx)
        await recurred.journal()
        return Outcome(recurred=recurred)
    except Exception as exc:
        # The steps still running in other branches finish first (their results and
        # compensations are journaled); none starts after this.
        await _end_body(run, ctx)
        cancel = await actor.finish() if run.fatal is None else None
        if cancel is not None:
            return await saga.cancelled(cancel)
        actor.finishing = True
        error = run.fatal if run.fatal is not None else exc
        # A journal the code does not match cannot be trusted to say what to undo.
        return await saga.failed(error, error_info(error),
                                 compensate=not isinstance(error, NonDeterminismError))
    if cancel is not None:  # cancelled while the body made its last step
        return await saga.cancelled(cancel)
    await journal.append(
        WorkflowCompleted(result=stored),
        InstanceChange(status="completed", output=encode_json({"result": stored})),
        effects=(EndAllWaits(journal.instance_id),),
    )
    await fire(hooks, "on_workflow_complete", journal.instance_id, wf.name, result)
    return Outcome(result=result)


async def _end_body(run: InstanceRun, ctx: WorkflowContext) -> None:
    """Wind down what is left of the body (see `InstanceActor.end_body`). With an
    activity of another branch still running, the journal first says where the body
    ended: what those branches journal after it came after the end (a retry runs
    their failures again, see `RequestRetry`)."""
    if run.actor.busy and not run.index.body_ended:
        run.index.body_ended = True
        run.journal.submit(BodyEnded(calls=ctx._calls))
    await run.actor.end_body()


def _recorded_outcome(actor: InstanceJournal) -> Outcome | None:
    for record in reversed(actor.records):
        entry = record.entry
        if isinstance(entry, WorkflowCompleted):
            return Outcome(result=entry.result)
        if isinstance(entry, WorkflowFailed):
            return Outcome(error=rebuild_error(entry.error))
        if isinstance(entry, WorkflowRecurred):
            return Outcome(result=entry.new_instance_id)
        if isinstance(entry, WorkflowCancelled):
            return Outcome(error=cancelled_error(actor.instance_id, entry.cancelled_by))
    return None


def _compensation_phase(records: list[Record]) -> CompensationsStarted | WorkflowCancelling | None:
    for record in records:
        if isinstance(record.entry, CompensationsStarted | WorkflowCancelling):
            return record.entry
    return None


def restore_result(entry: ActivityCompleted, annotation: Any) -> Any:
    """A recorded activity result, converted back to its type."""
    if needs_restore(annotation):
        return restore(entry.result, annotation)
    if entry.result_type is not None:
        recorded_type = import_path(entry.result_type)
        if recorded_type is not None:
            return restore(entry.result, recorded_type)
    return entry.result

