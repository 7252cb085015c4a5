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
from typing import TYPE_CHECKING, Any

from edda.actors.workflow_actor import ActorStopped, WorkflowActor
from edda.journal.codec import encode_json
from edda.journal.entries import (
    ActivityCompleted,
    ActivityFailed,
    CallEntry,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from edda.journal.group_commit import InstanceChange
from edda.runtime.context import WorkflowContext
from edda.runtime.errors import NonDeterminismError
from edda.runtime.hooks import fire
from edda.runtime.serialization import (
    error_info,
    import_path,
    needs_restore,
    rebuild_error,
    restore,
    to_jsonable,
)

if TYPE_CHECKING:
    from edda.journal.store import Record
    from edda.runtime.retry import RetryPolicy
    from edda.runtime.workflow import Workflow

log = logging.getLogger("edda.replay")


class ReplayIndex:
    """The recorded durable calls of a journal, by call number and by position."""

    def __init__(self, instance_id: str, records: list[Record]) -> None:
        self.instance_id = instance_id
        self.by_call: dict[int, CallEntry] = {}
        self.by_position: dict[str, CallEntry] = {}
        for record in records:
            entry = record.entry
            if isinstance(entry, ActivityCompleted | ActivityFailed):
                self.by_call[entry.call] = entry
                self.by_position[entry.position] = entry
        self.recorded_calls = max(self.by_call, default=-1) + 1

    def lookup(self, position: str, call: int, operation: str) -> CallEntry | None:
        """The recorded entry of this call, or None if it has not happened yet.

        Raises:
            NonDeterminismError: If the journal records another operation for
                this call, or this position under another call number.
        """
        entry = self.by_call.get(call)
        if entry is not None:
            if entry.position != position or entry.activity_name != operation:
                raise NonDeterminismError(
                    self.instance_id, position,
                    f"activity {entry.activity_name!r} at {entry.position} (call #{call})",
                    f"activity {operation!r} at {position} (call #{call})",
                )
            return entry
        entry = self.by_position.get(position)
        if entry is not None:
            raise NonDeterminismError(
                self.instance_id, position,
                f"activity {entry.activity_name!r} at {position} as call #{entry.call}",
                f"activity {operation!r} at {position} as call #{call}",
            )
        return None


@dataclass
class InstanceRun:
    """Everything one run of an instance needs besides user code."""

    actor: WorkflowActor
    index: ReplayIndex
    default_retry_policy: RetryPolicy | None
    fatal: BaseException | None = field(default=None)


def failure_output(exc: BaseException) -> str:
    """The ``output_data`` of a failed instance, as Edda shapes it."""
    info = error_info(exc)
    return encode_json(
        {"error_message": info.message, "error_type": info.qualname, "stack_trace": info.traceback}
    )


class Outcome:
    """How a run ended, for whoever waits on the instance."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error


async def run_workflow(
    wf: Workflow[..., Any],
    actor: WorkflowActor,
    *,
    worker_id: str,
    hooks: Any,
    default_retry_policy: RetryPolicy | None,
) -> Outcome:
    """Replay and run one instance until it completes or fails.

    Raises:
        ActorStopped: If the node lost the instance; nothing more was written.
    """
    started = actor.records[0].entry
    if not isinstance(started, WorkflowStarted):
        raise RuntimeError(f"journal of {actor.instance_id!r} does not begin with WorkflowStarted")
    finished = _recorded_outcome(actor)
    if finished is not None:
        return finished
    run = InstanceRun(actor, ReplayIndex(actor.instance_id, actor.records), default_retry_policy)
    ctx = WorkflowContext(run, worker_id=worker_id, hooks=hooks)
    try:
        arguments = wf.build_arguments(started.input)
        result = await wf.func(ctx, **arguments)
        if run.fatal is not None:
            raise run.fatal
        stored = to_jsonable(result, what=f"result of workflow {wf.name!r}")
    except (ActorStopped, asyncio.CancelledError):
        raise
    except Exception as exc:
        error = run.fatal if run.fatal is not None else exc
        await actor.append(
            WorkflowFailed(error=error_info(error)),
            InstanceChange(status="failed", output=failure_output(error)),
        )
        await fire(hooks, "on_workflow_failed", actor.instance_id, wf.name, error)
        return Outcome(error=error)
    await actor.append(
        WorkflowCompleted(result=stored),
        InstanceChange(status="completed", output=encode_json({"result": stored})),
    )
    await fire(hooks, "on_workflow_complete", actor.instance_id, wf.name, result)
    return Outcome(result=result)


def _recorded_outcome(actor: WorkflowActor) -> Outcome | None:
    for record in reversed(actor.records):
        entry = record.entry
        if isinstance(entry, WorkflowCompleted):
            return Outcome(result=entry.result)
        if isinstance(entry, WorkflowFailed):
            return Outcome(error=rebuild_error(entry.error))
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

