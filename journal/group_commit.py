"""Group commit: one writer per node, one transaction per batch.

Every actor of a node hands its appends to this writer. The writer takes
whatever has queued up while the previous transaction was committing, writes it
all in one transaction and then releases every waiter. A lone append commits at
once; under load batches grow, so the cost of an fsync is shared by every step
in the batch.

Each append carries the epoch at which its actor holds the instance. Inside the
transaction the writer checks the owner and epoch of every instance it touches
(row-locked on PostgreSQL, under the write lock on SQLite) and refuses appends
from a node that has been fenced off. An append also names its ``seq``; the
primary key makes two writers at one seq impossible.

The batch is one synchronous transaction (`Database.write`): on SQLite the
whole batch costs a single hop to the writer thread. While it commits, actors
keep running on the event loop and queue the next batch.

If a batch fails as a whole, every operation is retried alone so that one bad
operation fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from edda.journal import schema
from edda.journal.errors import EarlierWriteFailed, FencedError, JournalConflictError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

    from edda.journal.database import Database

T = TypeVar("T")
log = logging.getLogger("edda.journal")

# Statements are built once: building them costs more than running them.
_inst = schema.instances
_OWNER_COLUMNS = (_inst.c.instance_id, _inst.c.owner_node, _inst.c.epoch)
_FENCE_ONE = sa.select(*_OWNER_COLUMNS).where(_inst.c.instance_id == sa.bindparam("iid"))
_FENCE_MANY = sa.select(*_OWNER_COLUMNS).where(
    _inst.c.instance_id.in_(sa.bindparam("ids", expanding=True))
)
_INSERT_INSTANCE = sa.insert(_inst)
_INSERT_ENTRY = sa.insert(schema.journal)
_UPDATES: dict[tuple[str, ...], sa.Update] = {}


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
class InstanceChange:
    """Columns of the instance projection that an append changes (None: unchanged)."""

    status: str | None = None
    current_activity_id: str | None = None
    output: str | None = None


@dataclass(slots=True)
class Append:
    """One journal entry to write, with its effect on the projection.

    ``create`` holds a new instance row; it goes with the entry at seq 0.
    ``effects`` changes the side tables (waits, deliveries) in the same
    transaction, and only if the append is not fenced.
    """

    instance_id: str
    seq: int
    epoch: int
    kind: str
    body: bytes
    change: InstanceChange | None = None
    create: dict[str, Any] | None = None
    effects: Callable[[Connection], None] | None = None


@dataclass(slots=True)
class Taken:
    """What a take-and-append job found: the entry to append at the reserved seq."""

    kind: str
    body: bytes
    change: InstanceChange | None
    effects: Callable[[Connection], None] | None
    entry: Any


@dataclass(slots=True)
class _Pending:
    op: Append | Callable[[Connection], Any]
    #: An earlier write of the same actor; if it failed, this one is refused.
    after: asyncio.Future[Any] | None = None
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


_STOP = object()


class GroupCommitWriter:
    """The node's single journal writer."""

    def __init__(self, db: Database, node_id: str, *, max_batch: int = 1000) -> None:
        self._db = db
        self._node_id = node_id
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.appends = 0

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="edda-group-commit")

    async def aclose(self) -> None:
        """Write everything already queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(_STOP)
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

    def run(self, job: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Run ``job`` (synchronous) inside the next batch's transaction; resolves to its result."""
        return self._submit(job)

    def take_and_append(
        self, instance_id: str, seq: int, epoch: int,
        take: Callable[[Connection], Taken | None],
        *, after: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[Taken | None]:
        """Find something and journal it in one transaction (a competing message:
        claim it and record its receipt at once). Resolves to None when ``take``
        found nothing; ``seq`` is then left unused.

        Fails with `FencedError` (and nothing is written) when the node no longer
        owns the instance at ``epoch``.
        """
        def job(conn: Connection) -> Taken | None:
            taken = take(conn)
            if taken is None:
                return None
            self.write_in(conn, Append(instance_id, seq, epoch, taken.kind, taken.body,
                                       taken.change, effects=taken.effects))
            return taken

        return self._submit(job, after)

    def write_in(self, conn: Connection, op: Append) -> None:
        """Write one append inside a transaction someone else commits (a take job,
        or an activity's own transaction), fenced like a batch.

        Raises:
            FencedError: If this node no longer owns the instance at ``op.epoch``.
        """
        query = _FENCE_ONE.with_for_update() if self._db.dialect == "postgresql" else _FENCE_ONE
        row = conn.execute(query, {"iid": op.instance_id}).first()
        if row is None or (row.owner_node, row.epoch) != (self._node_id, op.epoch):
            raise FencedError(op.instance_id, op.epoch)
        now = time.time()
        conn.execute(_INSERT_ENTRY, [{"instance_id": op.instance_id, "seq": op.seq,
                                      "kind": op.kind, "body": op.body.decode(),
                                      "created_at": now}])
        if op.change is not None:
            values = {name: getattr(op.change, name) for name in InstanceChange.__slots__
                      if getattr(op.change, name) is not None}
            if values:
                _apply_changes(conn, {op.instance_id: values}, now)
        if op.effects is not None:
            op.effects(conn)

    def _submit(self, op: Any, after: asyncio.Future[Any] | None = None) -> asyncio.Future[Any]:
        if self._task is None or self._task.done():
            raise RuntimeError("the journal writer is not running (app not initialised?)")
        pending = _Pending(op, after)
        self._queue.put_nowait(pending)
        return pending.future

    async def _loop(self) -> None:
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
                await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        batch = _drop_orphans(batch)
        if not batch:
            return
        try:
            outcomes = await self._db.write(lambda conn: self._commit(conn, batch))
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

    def _commit(self, conn: Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        fence_ids = {
            p.op.instance_id for p in batch if isinstance(p.op, Append) and p.op.create is None
        }
        owners: dict[str, tuple[str | None, int]] = {}
        if fence_ids:
            params: dict[str, Any]
            if len(fence_ids) == 1:
                query, params = _FENCE_ONE, {"iid": next(iter(fence_ids))}
            else:
                query, params = _FENCE_MANY, {"ids": list(fence_ids)}
            if self._db.dialect == "postgresql":
                query = query.with_for_update()
            for row in conn.execute(query, params):
                owners[row.instance_id] = (row.owner_node, row.epoch)
        now = time.time()
        creates: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        effects: list[Callable[[Connection], None]] = []
        changes: dict[str, dict[str, Any]] = {}
        for i, pending in enumerate(batch):
            op = pending.op
            if not isinstance(op, Append):
                continue
            if op.create is not None:
                # Later appends of a new instance may share its batch.
                creates.append(op.create)
                owners[op.instance_id] = (op.create["owner_node"], op.create["epoch"])
            elif owners.get(op.instance_id) != (self._node_id, op.epoch):
                outcomes[i] = (False, FencedError(op.instance_id, op.epoch))
                continue
            rows.append(
                {
                    "instance_id": op.instance_id,
                    "seq": op.seq,
                    "kind": op.kind,
                    "body": op.body.decode(),
                    "created_at": now,
                }
            )
            if op.effects is not None:
                effects.append(op.effects)
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
        _apply_changes(conn, changes, now)
        for effect in effects:
            effect(conn)
        for i, pending in enumerate(batch):
            if not isinstance(pending.op, Append):
                outcomes[i] = (True, pending.op(conn))
        return outcomes


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
