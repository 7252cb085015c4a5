"""Node leases and the claiming of instances.

A node is a live member while its row has not expired; it owns the instances
of the partitions it holds (`edda.journal.partitions`). Expiry is written and
judged by the **database's clock**, never a host's, so nodes whose clocks
disagree still agree on who is alive. Only a partition's owner claims its
instances, so nodes never race for one: a claim marks the instance as run by
the node (``owner_node``; None once passivated) at the partition's epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.channels import pending_messages_query
from edda.journal.partitions import (
    AcquirePartitions,
    Beat,
    Heartbeat,
    PartitionRow,
    ReleasePartitions,
    cluster_id,
    free_partitions_of,
    list_partitions,
    owned_by,
    partition_count,
)
from edda.journal.waits import pending_events_query
from edda.journal.writes import SqlStore, Write, write_alone

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy import Connection

    from edda.journal.dialects import SqlDialect
    from edda.journal.writes import WriteContext

_i, _n, _w, _p = schema.instances, schema.nodes, schema.waits, schema.partitions


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node lease as stored; ``remaining`` seconds of it by the database's clock
    (negative once expired)."""

    node_id: str
    hostname: str
    pid: int
    proc_start: str
    remaining: float

    @property
    def expired(self) -> bool:
        return self.remaining < 0


@dataclass(frozen=True, slots=True)
class Claimed:
    """An instance this node now owns."""

    instance_id: str
    workflow_name: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Released:
    """Outcome of giving an instance up: whether it was ours, and whether something
    for one of its waits (an event, a channel message) is already stored, so that it
    must be woken again."""

    released: bool
    pending: bool


def _mine(node_id: Any, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
    """The instance is in a partition ``node_id`` holds an unexpired lease on."""
    return _i.c.partition.in_(owned_by(node_id, now))


def _runnable(workflow_names: Any) -> sa.ColumnElement[bool]:
    return sa.and_(_i.c.workflow_name.in_(workflow_names),
                   _i.c.status.in_(schema.WAITING_STATUSES + schema.UNFINISHED_STATUSES))


#: The epoch of the instance's partition (what its actor runs at).
_PARTITION_EPOCH = (sa.select(_p.c.epoch).where(_p.c.partition == _i.c.partition)
                    .scalar_subquery())
_CLAIMED = (_i.c.instance_id, _i.c.workflow_name, _i.c.epoch)


def _take(conn: Connection, node_id: str, where: sa.ColumnElement[bool]) -> list[Claimed]:
    """Mark the instances ``where`` selects as run by ``node_id``, at their partitions'
    epochs, and return them."""
    return _claimed(conn.execute(
        sa.update(_i).where(where).values(owner_node=node_id, epoch=_PARTITION_EPOCH)
        .returning(*_CLAIMED)))


def _claimed(rows: Any) -> list[Claimed]:
    return [Claimed(r.instance_id, r.workflow_name, r.epoch) for r in rows]


# -- writes ----------------------------------------------------------------------------

class RegisterNode(Write[None], frozen=True):
    """Insert this node's lease row (replacing one it held before)."""

    node_id: str
    service_name: str
    hostname: str
    pid: int
    proc_start: str
    lease_seconds: float

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        conn.execute(sa.delete(_n).where(_n.c.node_id == self.node_id))
        conn.execute(sa.insert(_n).values(
            node_id=self.node_id, service_name=self.service_name, hostname=self.hostname,
            pid=self.pid, proc_start=self.proc_start, started_at=ctx.now,
            expires_at=ctx.dialect.now() + self.lease_seconds))


class RemoveNodes(Write[None], frozen=True):
    """Delete the rows of dead nodes and free their partitions at once."""

    node_ids: list[str]

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        if not self.node_ids:
            return
        # Their writer marks stay: a node declared dead during an outage may still
        # have to learn, once it reconnects, whether its last batch committed.
        conn.execute(sa.delete(_n).where(_n.c.node_id.in_(self.node_ids)))
        free_partitions_of(conn, self.node_ids)
        conn.execute(sa.update(_i).where(_i.c.owner_node.in_(self.node_ids))
                     .values(owner_node=None))


class ClaimOrphans(Write[list[Claimed]], frozen=True):
    """Take the unfinished instances of this node's partitions that another node ran
    (it died, or the partition moved), for workflows this node runs."""

    node_id: str
    workflow_names: list[str]
    limit: int

    def apply(self, conn: Connection, ctx: WriteContext) -> list[Claimed]:
        if not self.workflow_names:
            return []
        orphaned = sa.and_(_mine(self.node_id, ctx.dialect.now()),
                           _i.c.status.in_(schema.UNFINISHED_STATUSES),
                           _i.c.workflow_name.in_(self.workflow_names),
                           sa.or_(_i.c.owner_node.is_(None), _i.c.owner_node != self.node_id))
        ids = list(conn.execute(sa.select(_i.c.instance_id).where(orphaned)
                                .order_by(_i.c.started_at).limit(self.limit)).scalars())
        if not ids:
            return []
        return _take(conn, self.node_id, sa.and_(_i.c.instance_id.in_(ids), orphaned))


class ClaimInstance(Write["Claimed | None"], frozen=True):
    """Take one waiting or unfinished instance of this node's partitions (to run it:
    it was passivated, or is new)."""

    instance_id: str
    node_id: str
    workflow_names: list[str]

    def apply(self, conn: Connection, ctx: WriteContext) -> Claimed | None:
        found = _take(conn, self.node_id, sa.and_(
            _i.c.instance_id == self.instance_id, _runnable(self.workflow_names),
            _mine(self.node_id, ctx.dialect.now())))
        return found[0] if found else None


class ClaimDue(Write[list[Claimed]], frozen=True):
    """Take the passivated instances of this node's partitions with a wait whose
    deadline has passed."""

    node_id: str
    workflow_names: list[str]
    now: float
    limit: int

    def apply(self, conn: Connection, ctx: WriteContext) -> list[Claimed]:
        if not self.workflow_names:
            return []
        idle = sa.and_(_mine(self.node_id, ctx.dialect.now()), _i.c.owner_node.is_(None),
                       _runnable(self.workflow_names))
        due = (sa.select(_w.c.instance_id).join(_i, _i.c.instance_id == _w.c.instance_id)
               .where(_w.c.deadline <= self.now, idle).distinct().limit(self.limit))
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        return _take(conn, self.node_id, sa.and_(_i.c.instance_id.in_(ids), idle))


class ReleaseInstance(Write[Released], frozen=True):
    """Give a waiting instance up (passivation), if this node still runs it with its
    partition at ``epoch`` and it still waits: a wait that ended meanwhile (its entry
    committed first) keeps the instance where it is."""

    instance_id: str
    node_id: str
    epoch: int

    def apply(self, conn: Connection, ctx: WriteContext) -> Released:
        at_epoch = sa.select(_p.c.partition).where(_p.c.owner_node == self.node_id,
                                                   _p.c.epoch == self.epoch)
        result = conn.execute(
            sa.update(_i).where(_i.c.instance_id == self.instance_id,
                                _i.c.owner_node == self.node_id,
                                _i.c.partition.in_(at_epoch),
                                _i.c.status.in_(schema.WAITING_STATUSES))
            .values(owner_node=None))
        if not result.rowcount:
            return Released(False, False)
        pending = (conn.execute(pending_events_query(self.instance_id, 1)).first() is not None
                   or conn.execute(pending_messages_query(self.instance_id, 1)).first()
                   is not None)
        return Released(True, pending)


# -- reads -----------------------------------------------------------------------------

def _list_nodes(conn: Connection, dialect: SqlDialect) -> list[NodeRow]:
    rows = conn.execute(sa.select(_n.c.node_id, _n.c.hostname, _n.c.pid, _n.c.proc_start,
                                  (_n.c.expires_at - dialect.now()).label("remaining")))
    return [NodeRow(r.node_id, r.hostname, r.pid, r.proc_start, float(r.remaining))
            for r in rows]


def _owned_unfinished(conn: Connection, dialect: SqlDialect, node_id: str,
                      workflow_names: Collection[str]) -> list[Claimed]:
    return _claimed(conn.execute(sa.select(*_CLAIMED).where(
        _i.c.owner_node == node_id, _mine(node_id, dialect.now()),
        _i.c.status.in_(schema.UNFINISHED_STATUSES), _i.c.workflow_name.in_(workflow_names))))


def _orphans_of_unknown(conn: Connection, dialect: SqlDialect, node_id: str,
                        workflow_names: Collection[str], limit: int) -> list[tuple[str, str]]:
    query = (sa.select(_i.c.instance_id, _i.c.workflow_name)
             .where(_mine(node_id, dialect.now()), _i.c.status.in_(schema.UNFINISHED_STATUSES),
                    _i.c.workflow_name.not_in(workflow_names)).limit(limit))
    return [(r.instance_id, r.workflow_name) for r in conn.execute(query)]


def _next_free_deadline(conn: Connection, dialect: SqlDialect, node_id: str,
                        workflow_names: Collection[str]) -> float | None:
    query = (sa.select(sa.func.min(_w.c.deadline))
             .select_from(_w.join(_i, _i.c.instance_id == _w.c.instance_id))
             .where(_mine(node_id, dialect.now()), _i.c.owner_node.is_(None),
                    _runnable(workflow_names)))
    value = conn.execute(query).scalar()
    return None if value is None else float(value)


class SqlLeaseStore(SqlStore):
    """`LeaseStore` on SQLite or PostgreSQL."""

    async def register(self, node_id: str, service_name: str, hostname: str, pid: int,
                       proc_start: str, lease_seconds: float) -> int:
        """Insert this node's row, in a transaction of its own (its lease is counted
        from this attempt); returns the database's partition count."""
        await write_alone(self._db, RegisterNode(node_id, service_name, hostname, pid,
                                                 proc_start, lease_seconds))
        return await self._db.query(partition_count, patient=True)

    async def beat(self, node_id: str, lease_seconds: float) -> Beat:
        """Renew the node's row and partitions in a transaction of its own: a heartbeat
        must not queue behind the journal appends of a busy node (nor wait out an
        outage: it fails, and the node judges its lease by when it last succeeded)."""
        return await write_alone(self._db, Heartbeat(node_id, lease_seconds))

    async def acquire(self, node_id: str, partitions: Collection[int],
                      lease_seconds: float) -> dict[int, int]:
        return await write_alone(self._db, AcquirePartitions(node_id, sorted(partitions),
                                                             lease_seconds))

    async def release_partitions(self, node_id: str, partitions: Collection[int]) -> None:
        await write_alone(self._db, ReleasePartitions(node_id, sorted(partitions)))

    async def partitions(self) -> list[PartitionRow]:
        dialect = self._db.sql
        return await self._db.query(lambda conn: list_partitions(conn, dialect.now()),
                                    patient=True)

    async def cluster_id(self) -> str:
        """The id that namespaces this database's transport subjects."""
        return await self._db.query(cluster_id, patient=True)

    async def remove(self, node_ids: Collection[str]) -> None:
        await self._write(RemoveNodes(list(node_ids)))

    async def nodes(self) -> list[NodeRow]:
        dialect = self._db.sql
        return await self._db.query(lambda conn: _list_nodes(conn, dialect), patient=True)

    async def claim_orphans(self, node_id: str, workflow_names: Collection[str],
                            limit: int) -> list[Claimed]:
        return await self._write(ClaimOrphans(node_id, list(workflow_names), limit))

    async def claim(self, instance_id: str, node_id: str,
                    workflow_names: Collection[str]) -> Claimed | None:
        return await self._write(ClaimInstance(instance_id, node_id, list(workflow_names)))

    async def claim_due(self, node_id: str, workflow_names: Collection[str], now: float,
                        limit: int) -> list[Claimed]:
        return await self._write(ClaimDue(node_id, list(workflow_names), now, limit))

    async def release(self, instance_id: str, node_id: str, epoch: int) -> Released:
        return await self._write(ReleaseInstance(instance_id, node_id, epoch))

    async def owned_unfinished(self, node_id: str,
                               workflow_names: Collection[str]) -> list[Claimed]:
        dialect = self._db.sql
        return await self._db.query(
            lambda conn: _owned_unfinished(conn, dialect, node_id, workflow_names),
            patient=True)

    async def orphans_of_unknown_workflows(self, node_id: str,
                                           workflow_names: Collection[str],
                                           limit: int = 1000) -> list[tuple[str, str]]:
        dialect = self._db.sql
        return await self._db.query(
            lambda conn: _orphans_of_unknown(conn, dialect, node_id, workflow_names, limit),
            patient=True)

    async def next_free_deadline(self, node_id: str,
                                 workflow_names: Collection[str]) -> float | None:
        dialect = self._db.sql
        return await self._db.query(
            lambda conn: _next_free_deadline(conn, dialect, node_id, workflow_names),
            patient=True)
