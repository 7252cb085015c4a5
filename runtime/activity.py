"""`@activity`: a function whose result is journaled and never recomputed on replay.

Calling an activity takes its position at once and returns an awaitable, so
``asyncio.gather(a(ctx), b(ctx))`` numbers its calls in the order they are
written. Sync functions run in a worker thread. Failed attempts are retried
in-process according to the activity's `RetryPolicy`; only the final outcome is
journaled, so a replay neither re-runs a completed activity nor retries a
failed one again.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from edda.actors.instance_journal import ActorStopped, WriteLost
from edda.journal.appends import InstanceChange
from edda.journal.entries import ActivityCompleted, ActivityFailed
from edda.journal.faults import describe, is_transient
from edda.runtime.compensation import bind_for_activity, compensation_of
from edda.runtime.context import WorkflowContext, check_context_parameter
from edda.runtime.errors import RetryExhaustedError, TerminalError
from edda.runtime.hooks import fire
from edda.runtime.replay import restore_result
from edda.runtime.retry import DEFAULT_RETRY_POLICY, RetryMetadata, RetryPolicy
from edda.runtime.saga import cancelled_error
from edda.runtime.serialization import (
    NotSerializableError,
    rebuild_error,
    record_error,
    to_jsonable,
    type_hints,
    type_path,
)
from edda.runtime.transactions import Transaction, current_transaction, enter, leave

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

log = logging.getLogger("edda.activity")
P = ParamSpec("P")
R = TypeVar("R")


class Activity(Generic[P, R]):
    """A durable step; call it as ``await my_activity(ctx, ...)`` inside a workflow.

    ``activity_id=`` (keyword) gives the call an explicit position instead of
    ``"{name}:{N}"``.
    """

    _is_activity = True

    def __init__(
        self,
        func: Callable[Concatenate[WorkflowContext, P], Awaitable[R]]
        | Callable[Concatenate[WorkflowContext, P], R],
        *,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"@activity needs a function, got {func!r}")
        check_context_parameter(func, "Activity")
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise TypeError(f"retry_policy must be a RetryPolicy, got {type(retry_policy)!r}")
        self.func = func
        self.name: str = func.__name__
        self.is_async = inspect.iscoroutinefunction(func)
        self.retry_policy = retry_policy
        functools.update_wrapper(self, func)
        #: The ``@on_failure`` compensation (put under or over ``@activity``).
        self.compensation: Callable[..., Any] | None = compensation_of(func)

    def __call__(
        self, ctx: WorkflowContext, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        explicit_id = kwargs.pop("activity_id", None)
        if not isinstance(ctx, WorkflowContext):
            raise TypeError(
                f"activity {self.name!r} must be called inside a workflow with the "
                f"WorkflowContext as first argument, got {type(ctx).__name__}; "
                f"to call the plain function, use {self.name}.func(...)"
            )
        position, call = ctx._reserve(self.name, explicit_id)  # type: ignore[arg-type]
        return self._execute(ctx, position, call, args, kwargs)

    async def _execute(
        self,
        ctx: WorkflowContext,
        position: str,
        call: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        run = ctx._run
        entries = ctx._recorded(position, call, f"activity {self.name!r}")
        recorded = None if entries is None else entries[-1]
        ctx.executed_activity_ids.add(position)
        await fire(ctx.hooks, "on_activity_start", ctx.instance_id, position, self.name,
                   recorded is not None)
        if isinstance(recorded, ActivityCompleted):
            result: R = restore_result(recorded, type_hints(self.func).get("return"))
            await fire(ctx.hooks, "on_activity_complete", ctx.instance_id, position, self.name,
                       result, True)
            return result
        if isinstance(recorded, ActivityFailed):
            error = rebuild_error(recorded.error)
            await fire(ctx.hooks, "on_activity_failed", ctx.instance_id, position, self.name, error)
            raise error
        stored_args = to_jsonable(list(args), what=f"positional arguments of activity {self.name!r}")
        stored_kwargs = to_jsonable(kwargs, what=f"keyword arguments of activity {self.name!r}")
        # Side effects come only after everything the workflow journaled is committed,
        # and never once a cancel has been accepted (or while one is being committed).
        await run.journal.settled()
        actor = run.actor
        request = await actor.cancel_settled() if actor.committing_cancel else actor.cancel
        if request is not None:
            raise cancelled_error(ctx.instance_id, request.by)
        if actor.held:  # its partition is moving: the next node runs it
            await actor.held_back()
        await run.host.until_leased(ctx.instance_id)
        # Nothing is awaited from here to begin_work: the end of the body counts it. One
        # called by an activity still running then is part of that step, and runs.
        nested = current_transaction(ctx) is not None
        _check_cancel(ctx, nested=nested)
        run.actor.begin_work()  # a running activity keeps the actor resident
        tried = _Tried(run.clock.now(), nested=nested)
        try:
            result, attempts, txn = await self._attempts(ctx, position, args, kwargs,
                                                         stored_args, stored_kwargs, call, tried)
            try:
                stored = to_jsonable(result, what=f"result of activity {self.name!r}")
                undo = None if self.compensation is None else bind_for_activity(
                    self.func, self.compensation, args, kwargs, result,
                    self.compensation.__name__)
                entry = ActivityCompleted(
                    position=position, call=call, activity_name=self.name, result=stored,
                    result_type=type_path(result), args=stored_args, kwargs=stored_kwargs,
                    attempts=attempts, compensation=undo, started_at=tried.started_at,
                    failed_attempts=tried.metadata.errors,
                )
                # The workflow sees the result as every replay will read it back.
                seen = _read_back(entry, type_hints(self.func).get("return"), self.name)
            except NotSerializableError as exc:
                await txn.rollback()
                await self._fail(ctx, position, call, exc, stored_args, stored_kwargs, attempts,
                                 tried)
                raise
            # Not waited for unless the user's session shares its transaction: the
            # workflow goes on to its next step while this commits, so the two share
            # a batch (see InstanceJournal.submit).
            await txn.journal(run.journal, entry, InstanceChange(current_activity_id=position),
                              wait=False)
            if undo is not None:
                run.compensations.append((position, undo))
        except (WriteLost, ActorStopped) as exc:
            if run.actor.body_ended and run.actor.lost is None:
                run.actor.lost = exc  # no one else hears of it: the ending run raises it
            raise
        finally:
            run.actor.end_work()
        if ctx.hooks is not None:
            await run.journal.settled()  # a hook hears of a result only once it is durable
        await fire(ctx.hooks, "on_activity_complete", ctx.instance_id, position, self.name,
                   result, False)
        return seen  # type: ignore[no-any-return]

    async def _attempts(
        self,
        ctx: WorkflowContext,
        position: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stored_args: Any,
        stored_kwargs: Any,
        call: int,
        tried: _Tried,
    ) -> tuple[R, int, Transaction]:
        policy = self.retry_policy or ctx._run.default_retry_policy or DEFAULT_RETRY_POLICY
        started = time.monotonic()
        metadata = tried.metadata
        attempt = 0
        away = 0.0
        while True:
            attempt += 1
            try:
                result, txn = await self._attempt(ctx, args, kwargs)
                return result, attempt, txn
            except _DatabaseAway as exc:
                # The workflow database failed under ctx.session: not the activity's fault,
                # so the attempt does not count; it runs again once the database is back.
                attempt -= 1
                away = min(max(away * 2, 0.05), 2.0)
                log.warning("activity %s of %s waits for the database (%s)", self.name,
                            ctx.instance_id, describe(exc.__cause__ or exc))
                _check_cancel(ctx, nested=tried.nested)
                await ctx._run.actor.pause(away, nested=tried.nested)
                _check_cancel(ctx, nested=tried.nested)
            except TerminalError as exc:
                failed = await self._fail(ctx, position, call, exc, stored_args, stored_kwargs,
                                          attempt, tried)
                if failed is exc:
                    raise
                raise failed from failed.__cause__  # its cause chain is as the journal's
            except Exception as exc:
                metadata.add_attempt(attempt, exc)
                elapsed = time.monotonic() - started
                reason = policy.stop_reason(exc, attempt, elapsed)
                if reason is not None:
                    final = RetryExhaustedError(
                        f"Activity {self.name} failed after {attempt} attempts: {reason}"
                    )
                    final.__cause__ = exc
                    seen = await self._fail(ctx, position, call, final, stored_args,
                                            stored_kwargs, attempt, tried)
                    raise seen from seen.__cause__
                delay = policy.calculate_delay(attempt)
                log.info("activity %s of workflow %s %s failed (attempt %d): %s: %s; trying "
                         "again in %.2fs", self.name, ctx.workflow_name, ctx.instance_id,
                         attempt, type(exc).__name__, exc, delay)
                await fire(ctx.hooks, "on_activity_retry", ctx.instance_id, position, self.name,
                           exc, attempt, delay)
                _check_cancel(ctx, nested=tried.nested)
                await ctx._run.actor.pause(delay, nested=tried.nested)
                # A cancel stops the retries; nothing is recorded.
                _check_cancel(ctx, nested=tried.nested)

    async def _attempt(self, ctx: WorkflowContext, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> tuple[R, Transaction]:
        """One call of the function, in a transaction of its own; rolled back if it raises."""
        txn = Transaction(ctx)
        token = enter(txn)
        try:
            if self.is_async:
                result = await self.func(ctx, *args, **kwargs)  # type: ignore[misc]
            else:
                bound = functools.partial(self.func, ctx, *args, **kwargs)
                result = await anyio.to_thread.run_sync(bound)
            await txn.flush()  # errors in the user's own writes fail this attempt
        except BaseException as exc:
            used_session = txn.uses_session
            await _quietly(txn.rollback())
            # Only the database's own errors: a timeout or OSError of the user's code
            # (a partner API, a file) is the activity's, and its retry policy decides.
            if used_session and _from_database(exc) and is_transient(exc):
                raise _DatabaseAway() from exc
            raise
        finally:
            leave(token)
        return result, txn

    async def _fail(
        self,
        ctx: WorkflowContext,
        position: str,
        call: int,
        error: Exception,
        stored_args: Any,
        stored_kwargs: Any,
        attempts: int,
        tried: _Tried,
    ) -> BaseException:
        """Journal the failure; return what the workflow sees of it, now as on replay."""
        info, seen = record_error(error)
        entry = ActivityFailed(
            position=position, call=call, activity_name=self.name, error=info,
            args=stored_args, kwargs=stored_kwargs, attempts=attempts,
            started_at=tried.started_at, failed_attempts=tried.metadata.errors,
        )
        await ctx._run.journal.append(entry, InstanceChange(current_activity_id=position))
        await fire(ctx.hooks, "on_activity_failed", ctx.instance_id, position, self.name, error)
        return seen

    @property
    def _compensation_func(self) -> Callable[..., Any] | None:
        return self.compensation

    @_compensation_func.setter
    def _compensation_func(self, func: Callable[..., Any]) -> None:
        self.compensation = func

    def __repr__(self) -> str:
        return f"<Activity {self.name}>"


_DRIVERS = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3")


def _from_database(exc: BaseException) -> bool:
    """Whether ``exc`` came out of the database layer (SQLAlchemy or a driver), not
    out of the user's own code."""
    if isinstance(exc, SQLAlchemyError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.split(".")[0] in _DRIVERS:
            return True
        tb = tb.tb_next
    return False


@dataclass
class _Tried:
    """One activity call's attempts so far: when the first began, and what failed."""

    started_at: float
    #: Called by another activity (part of that one's attempt): the end of the body
    #: does not stop it.
    nested: bool = False
    metadata: RetryMetadata = field(default_factory=RetryMetadata)


class _DatabaseAway(Exception):
    """An attempt that used ``ctx.session`` met an unavailable database."""


async def _quietly(rollback: Awaitable[None]) -> None:
    """Roll back, ignoring a database that is away (the transaction is gone with it)."""
    try:
        await rollback
    except Exception as exc:
        if not is_transient(exc):
            raise


def _check_cancel(ctx: WorkflowContext, *, nested: bool = False) -> None:
    """Stop an activity between attempts (or before its first): the instance was
    cancelled, or its body ended while this branch of it (a step of a ``gather``)
    was retrying. An activity called by another one belongs to that one's attempt."""
    actor = ctx._run.actor
    if actor.cancel is not None:
        raise cancelled_error(ctx.instance_id, actor.cancel.by)
    if actor.body_ended and not nested:
        raise asyncio.CancelledError


@overload
def activity(
    func: Callable[Concatenate[WorkflowContext, P], Awaitable[R]], /
) -> Activity[P, R]: ...


@overload
def activity(func: Callable[Concatenate[WorkflowContext, P], R], /) -> Activity[P, R]: ...


@overload
def activity(
    func: None = None, /, *, retry_policy: RetryPolicy | None = None
) -> Callable[[Callable[..., Any]], Activity[..., Any]]: ...


def activity(
    func: Callable[..., Any] | None = None, /, *, retry_policy: RetryPolicy | None = None
) -> Activity[..., Any] | Callable[[Callable[..., Any]], Activity[..., Any]]:
    """Make a function an activity: ``@activity`` or ``@activity(retry_policy=...)``.

    Works on async and sync functions; the first parameter receives the
    `WorkflowContext`.

    Raises:
        TypeError: If what is decorated is not callable.
    """
    if func is None:
        return lambda f: Activity(f, retry_policy=retry_policy)
    return Activity(func, retry_policy=retry_policy)


def _read_back(entry: ActivityCompleted, annotation: Any, name: str) -> Any:
    """The recorded result as a replay reads it.

    Raises:
        NotSerializableError: If it cannot be read back (a replay could not either).
    """
    try:
        return restore_result(entry, annotation)
    except Exception as exc:
        raise NotSerializableError(
            f"the result of activity {name!r} cannot be read back from the journal as "
            f"{entry.result_type or annotation}: {exc}") from exc
