"""`WorkflowContext`: what a workflow and its activities see of their instance."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

from edda.journal.appends import InstanceChange
from edda.journal.codec import encode_entry, encode_json
from edda.journal.entries import WorkflowRecurred, WorkflowStarted, kind_of
from edda.journal.recur import ContinueAsNew
from edda.runtime.errors import NonDeterminismError
from edda.runtime.transactions import SESSION_OUTSIDE, current_transaction, transaction

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from sqlalchemy.ext.asyncio import AsyncSession

    from edda.journal.entries import CallEntry
    from edda.runtime.replay import InstanceRun


class Recurred(BaseException):
    """Unwinds a workflow that called ``ctx.recur()``; user code cannot catch it
    with ``except Exception``."""

    def __init__(self, new_instance_id: str, started: WorkflowStarted, created_at: float,
                 journal: Callable[[], Awaitable[None]]) -> None:
        super().__init__(new_instance_id)
        self.new_instance_id = new_instance_id
        self.started = started
        self.created_at = created_at
        #: Journals the recur; the run calls it once what is left of the body has
        #: wound down, so that nothing of this instance comes after it.
        self.journal = journal


def require_context(ctx: object, name: str) -> WorkflowContext:
    """``ctx`` if it is a `WorkflowContext`.

    Raises:
        TypeError: Naming the durable call made outside a workflow.
    """
    if not isinstance(ctx, WorkflowContext):
        raise TypeError(f"{name}() must be called inside a workflow with its WorkflowContext "
                        f"as first argument, got {type(ctx).__name__}")
    return ctx


class WorkflowContext:
    """The context of one workflow instance, passed to the workflow and its activities.

    Attributes:
        instance_id: The instance's id.
        workflow_name: The workflow's registered name.
        worker_id: The id of the node running the instance.
        executed_activity_ids: Positions of the activities this run has passed.
    """

    def __init__(self, run: InstanceRun, *, worker_id: str, hooks: Any = None) -> None:
        self._run = run
        self.instance_id = run.journal.instance_id
        self.workflow_name = run.journal.workflow_name
        self.worker_id = worker_id
        self.hooks = hooks
        self.executed_activity_ids: set[str] = set()
        self._counters: dict[str, int] = {}
        self._calls = 0
        self._positions: set[str] = set()
        #: channel -> (mode, address, since), rebuilt as the workflow (re)runs.
        self._subscriptions: dict[str, tuple[str, str, float]] = {}

    @property
    def is_replaying(self) -> bool:
        """True while the workflow is re-running calls its journal already records.

        It turns False at the first durable call the journal does not hold yet,
        so code guarded by ``if not ctx.is_replaying`` runs once per real step.
        """
        return self._calls < self._run.index.recorded_calls

    def _reserve(self, name: str, explicit_id: str | None) -> tuple[str, int]:
        """Take the position id and call number of a durable call, when it is made.

        Raises:
            ValueError: If an explicit id is empty or was already used in this run.
            WorkflowCancelledException: If the instance is being cancelled.
            RuntimeError: Inside a compensation, which cannot make durable calls.
        """
        run = self._run
        txn = current_transaction(self)
        if txn is not None and txn.body:
            raise RuntimeError(
                f"{name!r} was called inside ctx.transaction() in the body of "
                f"{self.workflow_name!r}; a body transaction cannot hold durable calls "
                "(activities, waits, channels): an activity is a transaction of its own, "
                "so call it before or after the block")
        if run.actor.compensating:
            raise RuntimeError(
                f"{name!r} was called from a compensation of {self.instance_id!r}; a "
                "compensation cannot make durable calls (activities, waits, channels): "
                "do its work directly, it is retried per its retry policy")
        if run.actor.cancel is not None:
            from edda.runtime.saga import cancelled_error

            raise cancelled_error(self.instance_id, run.actor.cancel.by)
        # Once the body has ended, a branch left over (a gather's) starts nothing; a
        # call made by an activity still running is part of that step.
        if txn is None and run.actor.body_ended:
            raise asyncio.CancelledError
        if explicit_id is None:
            n = self._counters.get(name, 0) + 1
            self._counters[name] = n
            position = f"{name}:{n}"
        else:
            if not isinstance(explicit_id, str) or not explicit_id:
                raise ValueError(f"activity_id must be a non-empty string, got {explicit_id!r}")
            position = explicit_id
        if position in self._positions:
            raise ValueError(
                f"position {position!r} is used twice in workflow {self.workflow_name!r}; "
                "each durable call needs its own id"
            )
        self._positions.add(position)
        call = self._calls
        self._calls += 1
        return position, call

    def _recorded(self, position: str, call: int, operation: str) -> list[CallEntry] | None:
        """The journaled entries of a durable call, or None if it has not happened.

        Raises:
            NonDeterminismError: If the journal records another operation there; the
                run then fails with it even if user code catches it.
        """
        run = self._run
        if run.fatal is not None:
            raise run.fatal
        try:
            return run.index.lookup(position, call, operation)
        except NonDeterminismError as exc:
            run.fatal = exc
            raise

    # -- transactions ------------------------------------------------------------

    @property
    def session(self) -> AsyncSession:
        """The SQLAlchemy `AsyncSession` of the current transaction.

        Inside an activity (every attempt is a transaction) or an
        ``async with ctx.transaction()`` block, your writes commit atomically with
        the step's journal entry and its outbox events. Do not commit or roll it
        back yourself; your tables must live in the workflow database.

        Raises:
            RuntimeError: Outside a transaction.
        """
        txn = current_transaction(self)
        if txn is None:
            raise RuntimeError(SESSION_OUTSIDE)
        return txn.session()

    def in_transaction(self) -> bool:
        """Whether this code runs inside an activity's or a block's transaction."""
        return current_transaction(self) is not None

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """A transaction: a savepoint inside an activity; a durable step in a body.

        In the workflow body, the block's ``ctx.session`` work and
        `send_event_transactional` events commit together with a journal entry,
        so a replay does not write them again. Durable calls (activities, waits,
        channels) cannot be made inside a body block.
        """
        return transaction(self)

    def register_post_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` once the current transaction has committed (not on rollback).

        Raises:
            RuntimeError: Outside a transaction.
        """
        txn = current_transaction(self)
        if txn is None:
            raise RuntimeError("Cannot register post-commit callback: not in a transaction")
        if not callable(callback):
            raise TypeError(f"callback must be an async callable, got {callback!r}")
        txn.on_commit(callback)

    async def recur(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Continue as a new instance of this workflow with ``kwargs`` as input
        (positional arguments, as Edda's README writes ``ctx.recur(worker_id)``, fill
        the workflow's parameters in order).

        The current journal is archived and the new instance starts with a fresh
        one (Edda's ``recur``). Subscriptions (except direct mailboxes, which
        belong to an instance id) carry over with their delivery progress, so a
        ``subscribe -> receive -> process -> recur`` loop loses no message. The
        call does not return.

        Raises:
            TypeError: If ``kwargs`` do not fit the workflow's parameters.
        """
        run = self._run
        if run.fatal is not None:
            raise run.fatal
        wf = run.workflow
        if args:
            names = list(wf._params)
            if len(args) > len(names):
                raise TypeError(f"ctx.recur() got {len(args)} positional arguments but "
                                f"{wf.name} takes {len(names)}: {', '.join(names)}")
            given = dict(zip(names, args, strict=False))
            twice = sorted(set(given) & set(kwargs))
            if twice:
                raise TypeError(f"ctx.recur() got {', '.join(map(repr, twice))} twice")
            kwargs = {**given, **kwargs}
        stored = wf.prepare_input(kwargs)
        new_id = run.host.sibling_id(self.workflow_name, self.instance_id)
        carried = [
            {"channel": channel, "mode": mode, "address": address, "since": since}
            for channel, (mode, address, since) in self._subscriptions.items()
            if mode != "direct"
        ]
        started = WorkflowStarted(workflow_name=self.workflow_name, input=stored,
                                  continued_from=self.instance_id, subscriptions=carried)
        now = run.clock.now()
        row = {
            "instance_id": new_id, "workflow_name": self.workflow_name, "status": "running",
            "input": encode_json(stored), "source_hash": wf.source_hash,
            "owner_service": run.service_name, "continued_from": self.instance_id,
            "owner_node": self.worker_id, "epoch": run.journal.epoch,
            "started_at": now, "updated_at": now,
        }
        actor = run.journal

        async def journal() -> None:
            await actor.append(
                WorkflowRecurred(new_instance_id=new_id, input=stored),
                InstanceChange(status="recurred", output=encode_json({"recur_kwargs": stored})),
                effects=(ContinueAsNew(self.instance_id, actor.next_seq, row, kind_of(started),
                                       encode_entry(started)),),
            )

        raise Recurred(new_id, started, now, journal)

    def __repr__(self) -> str:
        return (
            f"WorkflowContext(instance_id={self.instance_id!r}, "
            f"workflow_name={self.workflow_name!r}, "
            f"executed_activities={len(self.executed_activity_ids)}, "
            f"is_replaying={self.is_replaying})"
        )


def check_context_parameter(func: Any, kind: str) -> None:
    """Refuse, when it is decorated, a workflow or activity whose first parameter
    cannot be the `WorkflowContext` the runtime passes it.

    Raises:
        TypeError: If ``func`` takes no positional parameter, or its first one is
            annotated with another type; the message shows the expected form.
    """
    import inspect

    name = getattr(func, "__name__", repr(func))
    params = list(inspect.signature(func).parameters.values())
    expected = f"write it as 'async def {name}(ctx: WorkflowContext, ...)'"
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise TypeError(f"{kind} {name!r} must take the WorkflowContext as its first "
                        f"positional parameter; {expected}")
    first = params[0]
    annotation = first.annotation
    if annotation is inspect.Parameter.empty or annotation is Any:
        return
    if isinstance(annotation, str):
        annotation = annotation.strip("'\"")
        accepted = annotation in ("Any", "typing.Any") or annotation.endswith("Context")
    else:
        accepted = isinstance(annotation, type) and issubclass(annotation, WorkflowContext)
    if not accepted:
        shown = annotation if isinstance(annotation, str) else getattr(
            annotation, "__name__", repr(annotation))
        raise TypeError(f"{kind} {name!r}: its first parameter {first.name!r} is annotated "
                        f"{shown}, but the first parameter receives the WorkflowContext; "
                        f"{expected}")
