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
from edda.journal import schema
from edda.journal.errors import FencedError, JournalConflictError
from sqlalchemy.exc import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edda.journal.database import Database
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
log = logging.getLogger("edda.journal")


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
    """

    instance_id: str
    seq: int
    epoch: int
    kind: str
    body: bytes
    change: InstanceChange | None = None
    create: dict[str, Any] | None = None


@dataclass(slots=True)
class _Pending:
    op: Append | Callable[[AsyncConnection], Awaitable[Any]]
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

    def append(self, op: Append) -> asyncio.Future[None]:
        """Queue an append; the future resolves once it is committed.

        The future fails with `FencedError` when the node no longer owns the
        instance at ``op.epoch``, with `JournalConflictError` when the seq is
        taken, or with the database's error.
        """
        return self._submit(op)

    def run(self, job: Callable[[AsyncConnection], Awaitable[T]]) -> asyncio.Future[T]:
        """Run ``job`` inside the next batch's transaction; resolves to its result."""
        return self._submit(job)

    def _submit(self, op: Any) -> asyncio.Future[Any]:
        if self._task is None or self._task.done():
            raise RuntimeError("the journal writer is not running (app not initialised?)")
        pending = _Pending(op)
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
        try:
            outcomes = await self._commit(batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, error=_translate(exc, batch[0].op))
                return
            for one in batch:
                await self._flush([one])
            return
        self.batches += 1
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                _settle(pending.future, value=value)
            else:
                _settle(pending.future, error=value)

    async def _commit(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        inst = schema.instances
        outcomes: list[tuple[bool, Any]] = [(True, None)] * len(batch)
        async with self._db.writer.begin() as conn:
            fence_ids = {
                p.op.instance_id for p in batch if isinstance(p.op, Append) and p.op.create is None
            }
            owners: dict[str, tuple[str | None, int]] = {}
            if fence_ids:
                query = sa.select(inst.c.instance_id, inst.c.owner_node, inst.c.epoch).where(
                    inst.c.instance_id.in_(fence_ids)
                )
                if self._db.dialect == "postgresql":
                    query = query.with_for_update()
                for row in await conn.execute(query):
                    owners[row.instance_id] = (row.owner_node, row.epoch)
            now = time.time()
            creates: list[dict[str, Any]] = []
            rows: list[dict[str, Any]] = []
            changes: dict[str, dict[str, Any]] = {}
            for i, pending in enumerate(batch):
                op = pending.op
                if not isinstance(op, Append):
                    continue
                if op.create is None and owners.get(op.instance_id) != (self._node_id, op.epoch):
                    outcomes[i] = (False, FencedError(op.instance_id, op.epoch))
                    continue
                if op.create is not None:
                    creates.append(op.create)
                rows.append(
                    {
                        "instance_id": op.instance_id,
                        "seq": op.seq,
                        "kind": op.kind,
                        "body": op.body.decode(),
                        "created_at": now,
                    }
                )
                if op.change is not None:
                    merged = changes.setdefault(op.instance_id, {})
                    for name in InstanceChange.__slots__:
                        value = getattr(op.change, name)
                        if value is not None:
                            merged[name] = value
            if creates:
                await conn.execute(sa.insert(inst), creates)
            if rows:
                await conn.execute(sa.insert(schema.journal), rows)
                self.appends += len(rows)
            await _apply_changes(conn, changes, now)
            for i, pending in enumerate(batch):
                if not isinstance(pending.op, Append):
                    outcomes[i] = (True, await pending.op(conn))
        return outcomes


async def _apply_changes(
    conn: AsyncConnection, changes: dict[str, dict[str, Any]], now: float
) -> None:
    """Update the projection, one executemany per distinct set of columns."""
    inst = schema.instances
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for instance_id, values in changes.items():
        columns = tuple(sorted(values))
        params = {f"p_{k}": v for k, v in values.items()}
        params["p_instance_id"] = instance_id
        params["p_updated_at"] = now
        by_columns.setdefault(columns, []).append(params)
    for columns, params_list in by_columns.items():
        values = {c: sa.bindparam(f"p_{c}") for c in (*columns, "updated_at")}
        statement = (
            sa.update(inst)
            .where(inst.c.instance_id == sa.bindparam("p_instance_id"))
            .values(**values)
        )
        await conn.execute(statement, params_list)


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
