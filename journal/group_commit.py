"""Group commit: one writer per node, one transaction per batch.

Every actor of a node hands its appends to this writer. The writer takes
whatever has queued up while the previous transaction was committing, writes it
all in one transaction and then releases every waiter. A lone append commits at
once; under load batches grow, so the cost of an fsync is shared by every step
in the batch.

Each append carries the epoch of its instance's partition at which its actor
runs. Inside the transaction the writer checks, for every instance it touches,
that this node still holds the partition at that epoch (key-share locked on
PostgreSQL, under the write lock on SQLite), and refuses appends from a node
that another node has taken the partition from (`edda.journal.partitions`). An append also names its ``seq``; the
primary key makes two writers at one seq impossible.

Writes are values (`edda.journal.writes.Write`), so a batch can be applied again:

- If the database is **unavailable** (a transient fault: down, restarting, a
  dropped connection, a locked, read-only or full file), the same batch is tried
  again with a growing pause until it commits; callers just wait. Nothing fails
  because the database was away for a while.
- If a batch fails **for a reason of its own** (a seq already taken, a fenced
  append, a constraint), every write is tried alone so that one bad write fails
  only its own caller.
- A batch, once taken, is written to the end even if the writer is cancelled
  (the node stopping, a test killing it): its callers always get an answer.
- Every batch also stamps this writer's row in ``edda_writer_marks``. When the
  connection drops while ``COMMIT`` is in flight the writer cannot know whether
  it committed; it reads the stamp back, and either hands out the results that
  committed or tries again. No value from a rolled-back attempt reaches a caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from edda.journal import schema
from edda.journal.appends import Append, InstanceChange, Take, Taken
from edda.journal.errors import (
    DatabaseUnavailableError,
    EarlierWriteFailed,
    FencedError,
    JournalConflictError,
)
from edda.journal.faults import describe, is_transient
from edda.journal.writes import Write, WriteContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskStatus
    from sqlalchemy import Connection

    from edda.journal.database import Database
    from edda.journal.dialects import SqlDialect
    from edda.journal.writes import Effect

T = TypeVar("T")
log = logging.getLogger("edda.journal")

# Statements are built once: building them costs more than running them.
_inst, _part = schema.instances, schema.partitions
#: (owner, epoch) of a partition, as a fence compares it.
Holder = tuple[str | None, int]
_NOBODY: Holder = (None, 0)
_FENCES: dict[str, tuple[sa.Select[Any], sa.Select[Any]]] = {}


def _fences(dialect: SqlDialect) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """The fencing reads on ``dialect``: the partitions of stored instances (by id),
    and partitions by number (for instances being created)."""
    found = _FENCES.get(dialect.name)
    if found is None:
        by_instance = (sa.select(_inst.c.instance_id, _part.c.owner_node, _part.c.epoch)
                       .select_from(_inst.join(_part, _part.c.partition == _inst.c.partition))
                       .where(_inst.c.instance_id.in_(sa.bindparam("ids", expanding=True))))
        by_partition = (sa.select(_part.c.partition, _part.c.owner_node, _part.c.epoch)
                        .where(_part.c.partition.in_(sa.bindparam("parts", expanding=True))))
        found = (dialect.key_share(by_instance, _part), dialect.key_share(by_partition, _part))
        _FENCES[dialect.name] = found
    return found


_INSERT_INSTANCE = sa.insert(_inst)
_INSERT_ENTRY = sa.insert(schema.journal)
_UPDATES: dict[tuple[str, ...], sa.Update] = {}
_marks = schema.writer_marks
_READ_MARK = sa.select(_marks.c.token).where(_marks.c.node_id == sa.bindparam("node"))

#: Pauses between attempts while the database is unavailable (seconds).
_RETRY_FIRST, _RETRY_MAX = 0.05, 2.0


def _update_statement(columns: tuple[str, ...]) -> sa.Update:
    statement = _UPDATES.get(columns)
    if statement is None:
        values: dict[str, Any] = {c: sa.bindparam(f"p_{c}") for c in (*columns, "updated_at")}
        statement = (
            sa.update(_inst)
            .where(_inst.c.instance_id == sa.bindparam("p_instance_id"))
            .values(**values)
        )
        _UPDATES[columns] = statement
    return statement


@dataclass(slots=True)
class _Pending:
    op: Append | Write[Any]
    #: An earlier write of the same actor; if it failed, this one is refused.
    after: asyncio.Future[Any] | None = None
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


_STOP = object()


class GroupCommitWriter:
    """The node's single journal writer: a node service (`run`), or standalone
    (`start` / `aclose`) for tools and tests."""

    name = "journal writer"

    def __init__(self, db: Database, node_id: str, *, max_batch: int = 1000,
                 now: Callable[[], float] = time.time) -> None:
        self._db = db
        self._node_id = node_id
        self._max_batch = max_batch
        self._now = now
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stopped = asyncio.Event()
        self._give_up_at: float | None = None
        self._outage_since: float | None = None
        self.batches = 0
        self.appends = 0
        #: Attempts that failed because the database was unavailable (and are made
        #: again; a batch whose lost COMMIT turned out to have gone through is not).
        self.retries = 0

    @property
    def waiting_for_database(self) -> bool:
        """Whether a batch waits for the database to come back, to commit or to
        learn whether its cut COMMIT went through."""
        return self._outage_since is not None

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Write batches until `drain` has written the last one (or until cancelled)."""
        task_status.started()
        await self._loop()

    async def drain(self, timeout: float = 10.0) -> None:
        """Write everything already queued and take nothing more.

        While the database is unavailable this waits up to ``timeout`` seconds
        for it; writes still pending then fail with `DatabaseUnavailableError`.
        """
        if self._closed:
            return
        self._closed = True
        self._give_up_at = time.monotonic() + timeout
        self._queue.put_nowait(_STOP)
        await self._stopped.wait()

    def abandon(self, timeout: float = 1.0) -> None:
        """Stop taking writes and stop waiting for an unavailable database after
        ``timeout`` seconds (the node is failing): writes not committed by then fail
        with `DatabaseUnavailableError`."""
        self._give_up_at = time.monotonic() + timeout
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_STOP)

    def start(self) -> None:
        """Run standalone, in a task of its own (tools and tests; a node uses `run`)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="edda-group-commit")

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop a writer started with `start`, after writing what is queued."""
        if self._task is None:
            return
        await self.drain(timeout)
        await self._task
        self._task = None

    def append(self, op: Append, *, after: asyncio.Future[Any] | None = None
               ) -> asyncio.Future[None]:
        """Queue an append; the future resolves once it is committed.

        The future fails with `FencedError` when the node no longer owns the
        instance at ``op.epoch``, with `JournalConflictError` when the seq is
        taken, or with the database's error. With ``after`` (an earlier write
        of the same actor, committed in this batch or an earlier one), it fails
        with `EarlierWriteFailed` when that write failed, and nothing is written.
        """
        return self._submit(op, after)

    def submit(self, op: Write[T], *, after: asyncio.Future[Any] | None = None
               ) -> asyncio.Future[T]:
        """Apply ``op`` in the next batch's transaction; resolves to its result once committed.

        A `Take` resolves to its `Taken` (or None); it fails with `FencedError`,
        and writes nothing, when the node no longer owns the instance at its epoch.
        """
        return self._submit(op, after)

    def write_in(self, conn: Connection, op: Append) -> None:
        """Write one append inside a transaction someone else commits (an activity's
        own transaction), fenced like a batch.

        Raises:
            FencedError: If this node no longer owns the instance at ``op.epoch``.
        """
        self._write_one(conn, self._context(), op)

    def _holds(self, holder: Holder | None, epoch: int) -> bool:
        """Whether this node holds a partition at ``epoch``.

        Expiry alone does not fence: a partition's epoch changes exactly when
        another node takes it, and until then nobody else writes there (a node
        that takes its own expired partition back keeps its epoch, so what it
        queued during an outage still commits)."""
        return holder == (self._node_id, epoch)

    def _context(self) -> WriteContext:
        return WriteContext(self._db.sql, self._now(), self._node_id)

    def _write_one(self, conn: Connection, ctx: WriteContext, op: Append) -> None:
        if not self._holds(_fence(conn, ctx, {op.instance_id}).get(op.instance_id), op.epoch):
            raise FencedError(op.instance_id, op.epoch)
        conn.execute(_INSERT_ENTRY, [{"instance_id": op.instance_id, "seq": op.seq,
                                      "kind": op.kind, "body": op.body.decode(),
                                      "created_at": ctx.now}])
        if op.change is not None:
            values = {name: getattr(op.change, name) for name in InstanceChange.__slots__
                      if getattr(op.change, name) is not None}
            if values:
                _apply_changes(conn, {op.instance_id: values}, ctx.now)
        for effect in op.effects:
            effect.apply(conn, ctx)

    def _take(self, conn: Connection, ctx: WriteContext, op: Take) -> Taken | None:
        taken = op.find(conn, ctx)
        if taken is not None:
            self._write_one(conn, ctx, Append.of(op.instance_id, op.seq, op.epoch, taken.entry,
                                                 taken.change, effects=taken.effects))
        return taken

    def _submit(self, op: Any, after: asyncio.Future[Any] | None = None) -> asyncio.Future[Any]:
        if self._closed:
            raise RuntimeError("the journal writer has stopped (the app shut down)")
        pending = _Pending(op, after)
        self._queue.put_nowait(pending)
        return pending.future

    async def _loop(self) -> None:
        try:
            await self._batches()
        finally:
            if self._closed:
                self._answer_the_rest()
                self._stopped.set()

    def _answer_the_rest(self) -> None:
        """The writer stopped: whatever is still queued was never tried."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _Pending):
                _settle(item.future, error=DatabaseUnavailableError(
                    RuntimeError("the journal writer stopped"), maybe_committed=False))

    async def _batches(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch: list[_Pending] = []
            if item is _STOP:
                stopping = True
            else:
                assert isinstance(item, _Pending)
                batch.append(item)
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stopping = True
                    continue
                assert isinstance(item, _Pending)
                batch.append(item)
            if batch:
                # Shielded: a batch once taken is answered, whatever cancels the writer.
                with anyio.CancelScope(shield=True):
                    try:
                        await self._flush(batch)
                    except Exception as exc:  # a bug: answer, then let the node know
                        for pending in batch:
                            _settle(pending.future, error=exc)
                        raise

    async def _flush(self, batch: list[_Pending]) -> None:
        batch = _drop_orphans(batch)
        if not batch:
            return
        try:
            outcomes = await self._until_committed(batch)
        except DatabaseUnavailableError as exc:
            for pending in batch:
                _settle(pending.future, error=exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, error=_translate(exc, batch[0].op))
                return
            for one in batch:
                await self._flush([one])
            return
        self.batches += 1
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if ok and isinstance(pending.op, Append):
                self.appends += 1
            if ok:
                _settle(pending.future, value=value)
            else:
                _settle(pending.future, error=value)

    async def _until_committed(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """Commit the batch, trying again for as long as the database is unavailable.

        Raises:
            DatabaseUnavailableError: If the writer is closing and the database is
                still away.
            Exception: A fault of the batch itself (not transient).
        """
        delay = _RETRY_FIRST
        while True:
            token = uuid.uuid4().hex
            computed: list[list[tuple[bool, Any]]] = []

            def transaction(conn: Connection, token: str = token,
                            computed: list[list[tuple[bool, Any]]] = computed) -> None:
                computed.append(self._commit(conn, batch, token))

            try:
                await self._db.write(transaction)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # Said at once: learning whether a cut COMMIT went through may itself
                # wait out the whole outage, and the writes behind it wait with it.
                self._unavailable(exc, len(batch))
                # The commit itself may have gone through before the connection dropped.
                if computed and await self._stamped(token):
                    self._back(len(batch))
                    return computed[0]
                self.retries += 1
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    raise DatabaseUnavailableError(exc, maybe_committed=bool(computed)) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            self._back(len(batch))
            return computed[0]

    async def _stamped(self, token: str) -> bool:
        """Whether the batch stamped ``token`` committed (asked until the database answers)."""
        delay = _RETRY_FIRST
        while True:
            try:
                found = await self._db.query(
                    lambda conn: conn.execute(_READ_MARK, {"node": self._node_id}).scalar())
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            return found == token

    def _unavailable(self, exc: BaseException, size: int) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning("the database is unavailable (%s); %d write(s) wait and are tried "
                        "again until it is back", describe(exc), size)

    def _back(self, size: int) -> None:
        if self._outage_since is not None:
            log.warning("the database is back after %.1f s; %d waiting write(s) committed",
                        time.monotonic() - self._outage_since, size)
            self._outage_since = None

    def _commit(self, conn: Connection, batch: list[_Pending],
                token: str) -> list[tuple[bool, Any]]:
        ctx = self._context()
        outcomes: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        appends = [p.op for p in batch if isinstance(p.op, Append)]
        owners = _fence(conn, ctx, {op.instance_id for op in appends if op.create is None})
        new_in = {op.create["partition"] for op in appends
                  if op.create is not None and op.epoch}
        holders = _fence_partitions(conn, ctx, new_in)
        creates: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        effects: list[Effect] = []
        changes: dict[str, dict[str, Any]] = {}
        for i, pending in enumerate(batch):
            op = pending.op
            if not isinstance(op, Append):
                continue
            if op.create is not None:
                # A new instance is never fenced (nobody else knows its id yet); its
                # later appends are, also those that share its batch. Epoch 0: made
                # for its partition's owner to run.
                creates.append(op.create)
                owners[op.instance_id] = (holders.get(op.create["partition"], _NOBODY)
                                          if op.epoch else _NOBODY)
            elif not self._holds(owners.get(op.instance_id), op.epoch):
                outcomes[i] = (False, FencedError(op.instance_id, op.epoch))
                continue
            rows.append(
                {
                    "instance_id": op.instance_id,
                    "seq": op.seq,
                    "kind": op.kind,
                    "body": op.body.decode(),
                    "created_at": ctx.now,
                }
            )
            effects.extend(op.effects)
            if op.change is not None:
                merged = changes.setdefault(op.instance_id, {})
                for name in InstanceChange.__slots__:
                    value = getattr(op.change, name)
                    if value is not None:
                        merged[name] = value
        if creates:
            conn.execute(_INSERT_INSTANCE, creates)
        if rows:
            conn.execute(_INSERT_ENTRY, rows)
        _apply_changes(conn, changes, ctx.now)
        for effect in effects:
            effect.apply(conn, ctx)
        for i, pending in enumerate(batch):
            op = pending.op
            if isinstance(op, Take):
                outcomes[i] = (True, self._take(conn, ctx, op))
            elif not isinstance(op, Append):
                outcomes[i] = (True, op.apply(conn, ctx))
        ctx.dialect.stamp(conn, self._node_id, token, ctx.now)
        return outcomes


def _fence(conn: Connection, ctx: WriteContext, ids: set[str]) -> dict[str, Holder]:
    """Who holds the partitions of stored instances ``ids`` (locked until commit)."""
    if not ids:
        return {}
    query = _fences(ctx.dialect)[0]
    return {r.instance_id: (r.owner_node, r.epoch)
            for r in conn.execute(query, {"ids": list(ids)})}


def _fence_partitions(conn: Connection, ctx: WriteContext,
                      partitions: set[int]) -> dict[int, Holder]:
    """Who holds ``partitions`` (locked until commit)."""
    if not partitions:
        return {}
    query = _fences(ctx.dialect)[1]
    return {r.partition: (r.owner_node, r.epoch)
            for r in conn.execute(query, {"parts": list(partitions)})}


def _drop_orphans(batch: list[_Pending]) -> list[_Pending]:
    """Refuse (and leave out) writes whose earlier write has already failed.

    Earlier writes in the same batch are not settled yet; they commit with it.
    """
    kept: list[_Pending] = []
    for pending in batch:
        after = pending.after
        failed = after is not None and after.done() and (
            after.cancelled() or after.exception() is not None)
        if not failed:
            kept.append(pending)
            continue
        assert after is not None
        cause = None if after.cancelled() else after.exception()
        error: Exception = (cause if isinstance(cause, FencedError | EarlierWriteFailed)
                            else EarlierWriteFailed(cause))
        _settle(pending.future, error=error)
    return kept


def _apply_changes(conn: Connection, changes: dict[str, dict[str, Any]], now: float) -> None:
    """Update the projection, one executemany per distinct set of columns."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for instance_id, values in changes.items():
        params = {f"p_{k}": v for k, v in values.items()}
        params["p_instance_id"] = instance_id
        params["p_updated_at"] = now
        by_columns.setdefault(tuple(sorted(values)), []).append(params)
    for columns, params_list in by_columns.items():
        conn.execute(_update_statement(columns), params_list)


def _translate(exc: Exception, op: object) -> Exception:
    if isinstance(exc, IntegrityError) and isinstance(op, Append):
        return JournalConflictError(op.instance_id, op.seq)
    return exc


def _settle(
    future: asyncio.Future[Any], *, value: Any = None, error: BaseException | None = None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
