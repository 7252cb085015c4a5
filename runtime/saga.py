"""How a run ends: completion is simple; failure and cancellation compensate first.

On failure (`Saga.failed`) or cancellation (`Saga.cancelled`) the registered
compensations run newest first. The phase begins with a journal entry
(`CompensationsStarted` or `WorkflowCancelling`), so a restart goes straight back
to compensating without running the workflow body again, and each compensation's
outcome is journaled (`CompensationDone`), so a finished one never runs twice. A
compensation that fails for good is recorded and the others still run; the final
entry and the instance's ``output_data`` name the ones that failed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edda.journal.appends import InstanceChange
from edda.journal.cancel import cancel_output
from edda.journal.codec import encode_json
from edda.journal.entries import (
    ActivityCompleted,
    CompensationCall,
    CompensationDone,
    CompensationRegistered,
    CompensationsStarted,
    WorkflowCancelled,
    WorkflowCancelling,
    WorkflowFailed,
)
from edda.journal.waits import EndAllWaits
from edda.runtime.compensation import run_one
from edda.runtime.errors import NonDeterminismError, TerminalError, WorkflowCancelledException
from edda.runtime.hooks import fire
from edda.runtime.serialization import error_info

if TYPE_CHECKING:
    from edda.journal.cancel import CancelRequest
    from edda.journal.entries import ErrorInfo
    from edda.journal.records import Record
    from edda.runtime.context import Recurred, WorkflowContext
    from edda.runtime.replay import InstanceRun

log = logging.getLogger("edda.saga")


class Outcome:
    """How a run ended (or that it first suspended), for whoever waits on the instance."""

    def __init__(self, result: Any = None, error: BaseException | None = None,
                 suspended: bool = False, recurred: Recurred | None = None) -> None:
        self.result = result
        self.error = error
        self.suspended = suspended
        self.recurred = recurred


def failure_output(exc: BaseException | ErrorInfo, failed: list[str] | None = None) -> str:
    """The ``output_data`` of a failed instance, as Edda shapes it (plus the
    compensations that failed, if any)."""
    info = exc if not isinstance(exc, BaseException) else error_info(exc)
    output: dict[str, Any] = {"error_message": info.message, "error_type": info.qualname,
                              "stack_trace": info.traceback}
    if failed:
        output["failed_compensations"] = failed
    return encode_json(output)


class CancelResult:
    """What `EddaApp.cancel_workflow` answers: true if the cancel was accepted;
    ``reason`` says why not (or "cancel requested")."""

    __slots__ = ("accepted", "reason")

    def __init__(self, accepted: bool, reason: str) -> None:
        self.accepted = accepted
        self.reason = reason

    def __bool__(self) -> bool:
        return self.accepted

    def __eq__(self, other: object) -> bool:
        # Edda returned a plain bool: `await app.cancel_workflow(i) == True` keeps working.
        if isinstance(other, bool):
            return self.accepted is other
        if isinstance(other, CancelResult):
            return (self.accepted, self.reason) == (other.accepted, other.reason)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.accepted)

    def __repr__(self) -> str:
        return f"CancelResult(accepted={self.accepted}, reason={self.reason!r})"


def cancelled_error(instance_id: str, cancelled_by: str) -> WorkflowCancelledException:
    return WorkflowCancelledException(
        f"workflow instance {instance_id!r} was cancelled by {cancelled_by!r}")


def registered_compensations(records: list[Record]) -> list[tuple[str, CompensationCall]]:
    """The compensations a journal registers, oldest first, keyed by registering position."""
    found: list[tuple[str, CompensationCall]] = []
    for record in records:
        entry = record.entry
        if isinstance(entry, ActivityCompleted) and entry.compensation is not None:
            found.append((entry.position, entry.compensation))
        elif isinstance(entry, CompensationRegistered):
            found.append((entry.position, entry.compensation))
    return found


class Saga:
    """The end of one run that did not complete: compensate, then record the end."""

    def __init__(self, run: InstanceRun, ctx: WorkflowContext, workflow_name: str,
                 hooks: Any) -> None:
        self._run = run
        self._ctx = ctx
        self._name = workflow_name
        self._hooks = hooks

    async def failed(self, error: BaseException, info: ErrorInfo, *, journaled: bool = False,
                     compensate: bool = True) -> Outcome:
        """Compensate (unless ``compensate`` is False) and end the instance ``failed``."""
        actor = self._run.journal
        failed: list[str] = []
        if compensate and self._pending():
            if not journaled:
                await actor.append(CompensationsStarted(error=info),
                                   InstanceChange(status="compensating"))
            failed = await self._compensate()
        await actor.append(
            WorkflowFailed(error=info, failed_compensations=failed),
            InstanceChange(status="failed", output=failure_output(info, failed)),
            effects=(EndAllWaits(actor.instance_id),),
        )
        _log_failure(self._name, actor.instance_id, error, failed)
        await fire(self._hooks, "on_workflow_failed", actor.instance_id, self._name, error)
        return Outcome(error=error)

    async def cancelled(self, request: CancelRequest, *, journaled: bool = False) -> Outcome:
        """Compensate and end the instance ``cancelled``, with who and when."""
        run, actor = self._run, self._run.journal
        run.actor.cancel = request
        run.actor.finishing = True
        if not journaled:
            await actor.append(
                WorkflowCancelling(cancelled_by=request.by, cancelled_at=request.at,
                                   previous_status=request.previous_status),
                InstanceChange(status="compensating") if self._pending() else None,
                effects=(EndAllWaits(actor.instance_id),),
            )
        failed = await self._compensate()
        await actor.append(
            WorkflowCancelled(cancelled_by=request.by, cancelled_at=request.at,
                              previous_status=request.previous_status,
                              failed_compensations=failed),
            InstanceChange(status="cancelled",
                           output=encode_json(cancel_output(request, failed))),
            effects=(EndAllWaits(actor.instance_id),),
        )
        await fire(self._hooks, "on_workflow_cancelled", actor.instance_id, self._name)
        return Outcome(error=cancelled_error(actor.instance_id, request.by))

    def _done(self) -> dict[str, CompensationDone]:
        return {r.entry.registered_at: r.entry for r in self._run.journal.records
                if isinstance(r.entry, CompensationDone)}

    def _pending(self) -> bool:
        done = self._done()
        return any(key not in done for key, _ in self._run.compensations)

    async def _compensate(self) -> list[str]:
        """Run every compensation not yet done, newest first; the keys of those that failed."""
        run = self._run
        await run.journal.settled()
        run.actor.compensating = True
        done = self._done()
        failed = [key for key, entry in done.items() if entry.error is not None]
        for key, call in reversed(run.compensations):
            if key in done:
                continue
            error: Exception | None = None
            try:
                attempts = await run_one(self._ctx, call, run.default_retry_policy)
                entry = CompensationDone(registered_at=key, name=call.name, attempts=attempts)
            except Exception as exc:
                log.error("compensation %s of workflow %s %s (registered at %s) failed for "
                          "good: %s: %s", call.name, run.journal.workflow_name,
                          run.journal.instance_id, key, type(exc).__name__, exc)
                entry = CompensationDone(registered_at=key, name=call.name,
                                         attempts=getattr(exc, "attempts", 1),
                                         error=error_info(exc))
                failed.append(key)
                error = exc
            await run.journal.append(entry)
            await fire(self._hooks, "on_compensation", run.journal.instance_id, self._name,
                       call.name, key, error)
        return failed


def _log_failure(name: str, instance_id: str, error: BaseException, failed: list[str]) -> None:
    """Say once, when an instance ends failed, why; a journal that no longer matches
    the code is told apart, since only a deploy (or a retry after one) helps it."""
    if isinstance(error, NonDeterminismError):
        log.error("workflow %s %s is parked as failed: its code no longer matches its "
                  "journal (%s); deploy the old code or a new workflow name, then retry it",
                  name, instance_id, error)
        return
    undone = f"; compensations that failed: {', '.join(failed)}" if failed else ""
    # A TerminalError is the workflow's own decision: its message says enough.
    detail = None if isinstance(error, TerminalError) else error
    log.warning("workflow %s %s failed: %s: %s%s", name, instance_id, type(error).__name__,
                error, undone, exc_info=detail)
