"""The transactions user code writes in: ``ctx.session``, ``ctx.transaction()``, the outbox.

Every activity attempt runs in a `Transaction`. Outbox rows
(`send_event_transactional`) are collected in it and written in the same
transaction as the activity's journal entry. An activity that never touches
``ctx.session`` gets that for free from group commit: its rows ride along with
its entry in the writer's batch. One that does gets a database transaction of
its own (Edda's rule): its ORM work, its outbox rows and its journal entry
commit together, or not at all.

In the workflow body, ``async with ctx.transaction():`` is a durable step of its
own: what it writes (session work and outbox rows) commits with a
``TransactionCommitted`` entry, so a replay does not write it again: the block
runs again, but its session is rolled back and `send_event_transactional`
answers the event ids it recorded.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from edda.journal.entries import TransactionCommitted
from edda.journal.outbox import InsertOutbox

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Awaitable, Callable

    from sqlalchemy import Connection

    from edda.actors.instance_journal import InstanceJournal
    from edda.journal.appends import InstanceChange
    from edda.journal.entries import Entry
    from edda.journal.writes import Effect
    from edda.runtime.context import WorkflowContext

log = logging.getLogger("edda.transactions")

_current: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "edda_transaction", default=None)

SESSION_OUTSIDE = ("ctx.session must be accessed inside a transaction. Use @activity (default) "
                   "or async with ctx.transaction()")


class Transaction:
    """One activity attempt's transaction, or one ``ctx.transaction()`` block in a body."""

    def __init__(self, ctx: WorkflowContext, *, body: bool = False,
                 recorded_ids: list[str] | None = None) -> None:
        self.ctx = ctx
        self.body = body
        #: Outbox rows to insert with the journal entry.
        self.events: list[dict[str, Any]] = []
        self._session: AsyncSession | None = None
        self._callbacks: list[Callable[[], Awaitable[None]]] = []
        #: For a body block being replayed: the event ids it committed, in order.
        self._recorded_ids = recorded_ids

    @property
    def replaying(self) -> bool:
        """True for a body block that already committed; it writes nothing again."""
        return self._recorded_ids is not None

    @property
    def uses_session(self) -> bool:
        return self._session is not None

    def session(self) -> AsyncSession:
        """The transaction's session, begun on first use."""
        if self._session is None:
            engine = self.ctx._run.db.user_engine()
            self._session = AsyncSession(bind=engine, expire_on_commit=False)
        return self._session

    def add_event(self, row: dict[str, Any]) -> str:
        """Queue an outbox row; returns its event id (the recorded one on replay)."""
        if self._recorded_ids is not None:
            n = len(self.events)
            self.events.append(row)
            if n < len(self._recorded_ids):
                return self._recorded_ids[n]
            return str(row["event_id"])
        self.events.append(row)
        return str(row["event_id"])

    @property
    def event_ids(self) -> list[str]:
        return [str(row["event_id"]) for row in self.events]

    def outbox_effects(self) -> tuple[Effect, ...]:
        """The write that stores the queued outbox rows, if there are any."""
        if not self.events or self.replaying:
            return ()
        return (InsertOutbox(list(self.events)),)

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._callbacks.append(callback)

    async def flush(self) -> None:
        """Send the session's pending ORM changes, so their errors fail this attempt."""
        if self._session is not None:
            await self._session.flush()

    async def commit(self, write: Callable[[Connection], None]) -> None:
        """Run ``write`` (the journal entry) in the session's transaction and commit."""
        session = self.session()
        try:
            await session.flush()
            conn = await session.connection()
            await conn.run_sync(write)
            await session.commit()
        finally:
            await session.close()

    async def rollback(self) -> None:
        """Discard the session's work; the outbox rows are dropped with it."""
        session, self._session = self._session, None
        self.events.clear()
        self._callbacks.clear()
        if session is not None:
            try:
                await session.rollback()
            finally:
                await session.close()

    async def journal(self, actor: InstanceJournal, entry: Entry,
                      change: InstanceChange | None = None, *, wait: bool) -> None:
        """Journal the step's entry with this transaction's outbox rows.

        With a session, the entry commits in the session's own transaction. Without
        one it goes through group commit: awaited with ``wait``, else submitted (the
        workflow goes on while it commits; post-commit work runs once it has).
        """
        effects = self.outbox_effects()
        if self.uses_session:
            await actor.append_in(self.commit, entry, change, effects=effects)
        elif wait:
            await actor.append(entry, change, effects=effects)
        else:
            written = actor.submit(entry, change, effects=effects)
            if self.has_commit_work:
                written.add_done_callback(self._committed_callback)
            return
        await self.committed()

    @property
    def has_commit_work(self) -> bool:
        """Whether anything waits for the commit (callbacks, or events to relay)."""
        return bool(self._callbacks) or (bool(self.events) and not self.replaying)

    def _committed_callback(self, written: asyncio.Future[None]) -> None:
        """A done-callback for a submitted write: `committed` once it succeeded."""
        if written.cancelled() or written.exception() is not None:
            return
        self.ctx._run.host.spawn(self.committed())

    async def committed(self) -> None:
        """Run the post-commit callbacks; their errors are logged, not raised."""
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("post-commit callback %r of %s failed", callback,
                              self.ctx.instance_id)
        if self.events and not self.replaying:
            self.ctx._run.host.outbox_written()


def current_transaction(ctx: WorkflowContext) -> Transaction | None:
    """The transaction ``ctx`` is in right now (in this task), if any."""
    txn = _current.get()
    return txn if txn is not None and txn.ctx is ctx else None


def enter(txn: Transaction) -> contextvars.Token[Transaction | None]:
    return _current.set(txn)


def leave(token: contextvars.Token[Transaction | None]) -> None:
    _current.reset(token)


def outbox_row(instance_id: str, event_type: str, event_source: str, data: str | None,
               data_bytes: bytes | None, content_type: str, now: float,
               extensions: str | None = None) -> dict[str, Any]:
    """A new pending outbox row, due at once (``now``: the node's clock;
    ``extensions``: the event's extension attributes as JSON)."""
    return {"event_id": str(uuid.uuid4()), "event_type": event_type,
            "event_source": event_source, "data": data, "data_bytes": data_bytes,
            "content_type": content_type, "instance_id": instance_id, "status": "pending",
            "attempts": 0, "next_attempt_at": now, "created_at": now,
            "extensions": extensions}


@asynccontextmanager
async def transaction(ctx: WorkflowContext) -> AsyncIterator[None]:
    """``ctx.transaction()``: a savepoint inside an activity, a durable block in a body."""
    txn = current_transaction(ctx)
    if txn is not None:
        if txn.replaying:
            yield
            return
        async with txn.session().begin_nested():
            yield
        return
    run = ctx._run
    position, call = ctx._reserve("transaction", None)
    entries = ctx._recorded(position, call, "transaction")
    recorded = None if entries is None else entries[-1]
    recorded_ids = recorded.event_ids if isinstance(recorded, TransactionCommitted) else None
    await run.journal.settled()  # nothing of the body may commit before what came earlier
    txn = Transaction(ctx, body=True, recorded_ids=recorded_ids)
    token = enter(txn)
    try:
        yield
    except BaseException:
        await txn.rollback()
        raise
    finally:
        leave(token)
    if txn.replaying:
        await txn.rollback()
        return
    entry = TransactionCommitted(position=position, call=call, event_ids=txn.event_ids)
    await txn.journal(run.journal, entry, wait=True)
