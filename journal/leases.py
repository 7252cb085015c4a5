"""Node leases and the claiming of instances.

A node owns its instances while its lease row has not expired. Expiry is
written and judged by the **database's clock**, never a host's, so nodes whose
clocks disagree still agree on who is alive. Claiming an instance bumps its
epoch: from then on, appends of the previous owner are refused (fencing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.channels import pending_messages_query
from edda.journal.waits import pending_events_query
from edda.journal.writes import SqlStore, Write, write_alone

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy import Connection

    from edda.journal.dialects import SqlDialect
    from edda.journal.writes import WriteContext

_i, _n, _w = schema.instances, schema.nodes, schema.waits


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node lease as stored; ``expired`` as the database's clock judges it now."""

    node_id: str
    hostname: str
    pid: int
    proc_start: str
    expired: bool


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


def _free() -> sa.ColumnElement[bool]:
    return sa.or_(_i.c.owner_node.is_(None), _i.c.owner_node.not_in(sa.select(_n.c.node_id)))


def _claimable(workflow_names: Any) -> sa.ColumnElement[bool]:
    return sa.and_(_free(), _i.c.workflow_name.in_(workflow_names),
                   _i.c.status.in_(schema.WAITING_STATUSES + schema.UNFINISHED_STATUSES))


def _orphaned() -> sa.ColumnElement[bool]:
    return sa.and_(_i.c.status.in_(schema.UNFINISHED_STATUSES), _free())


_CLAIM_ONE = (
    sa.update(_i)
    .where(_i.c.instance_id == sa.bindparam("iid"),
           _claimable(sa.bindparam("names", expanding=True)))
    .values(owner_node=sa.bindparam("node"), epoch=_i.c.epoch + 1)
    .returning(_i.c.instance_id, _i.c.workflow_name, _i.c.epoch)
)
_CLAIMED = (_i.c.instance_id, _i.c.workflow_name, _i.c.epoch)


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


class RenewNode(Write[bool], frozen=True):
    """Extend this node's lease; False if its row is gone (another node declared it dead)."""

    node_id: str
    lease_seconds: float

    def apply(self, conn: Connection, ctx: WriteContext) -> bool:
        result = conn.execute(sa.update(_n).where(_n.c.node_id == self.node_id)
                              .values(expires_at=ctx.dialect.now() + self.lease_seconds))
        return bool(result.rowcount)


class RemoveNodes(Write[None], frozen=True):
    """Delete lease rows and release what those nodes owned."""

    node_ids: list[str]

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        if not self.node_ids:
            return
        # Their writer marks stay: a node declared dead during an outage may still
        # have to learn, once it reconnects, whether its last batch committed.
        conn.execute(sa.delete(_n).where(_n.c.node_id.in_(self.node_ids)))
        conn.execute(sa.update(_i).where(_i.c.owner_node.in_(self.node_ids))
                     .values(owner_node=None))


class ClaimOrphans(Write[list[Claimed]], frozen=True):
    """Take unfinished instances nobody live owns, for workflows this node runs."""

    node_id: str
    workflow_names: list[str]
    limit: int

    def apply(self, conn: Connection, ctx: WriteContext) -> list[Claimed]:
        if not self.workflow_names:
            return []
        candidates = (sa.select(_i.c.instance_id)
                      .where(_orphaned(), _i.c.workflow_name.in_(self.workflow_names))
                      .order_by(_i.c.started_at).limit(self.limit))
        ids = list(conn.execute(candidates).scalars())
        if not ids:
            return []
        return _claimed(conn.execute(
            sa.update(_i).where(_i.c.instance_id.in_(ids), _orphaned())
            .values(owner_node=self.node_id, epoch=_i.c.epoch + 1).returning(*_CLAIMED)))


class ClaimInstance(Write["Claimed | None"], frozen=True):
    """Take one waiting or unfinished instance nobody live owns (a passivated one)."""

    instance_id: str
    node_id: str
    workflow_names: list[str]

    def apply(self, conn: Connection, ctx: WriteContext) -> Claimed | None:
        row = conn.execute(_CLAIM_ONE, {"iid": self.instance_id, "node": self.node_id,
                                        "names": self.workflow_names}).first()
        return None if row is None else Claimed(row.instance_id, row.workflow_name, row.epoch)


class ClaimDue(Write[list[Claimed]], frozen=True):
    """Take free instances with a wait whose deadline has passed."""

    node_id: str
    workflow_names: list[str]
    now: float
    limit: int

    def apply(self, conn: Connection, ctx: WriteContext) -> list[Claimed]:
        if not self.workflow_names:
            return []
        due = (sa.select(_w.c.instance_id).join(_i, _i.c.instance_id == _w.c.instance_id)
               .where(_w.c.deadline <= self.now, _claimable(self.workflow_names))
               .distinct().limit(self.limit))
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        return _claimed(conn.execute(
            sa.update(_i).where(_i.c.instance_id.in_(ids), _free())
            .values(owner_node=self.node_id, epoch=_i.c.epoch + 1).returning(*_CLAIMED)))


class ReleaseInstance(Write[Released], frozen=True):
    """Give a waiting instance up (passivation), if this node still holds it at ``epoch``
    and it still waits: a wait that ended meanwhile (its entry committed first) keeps
    the instance where it is."""

    instance_id: str
    node_id: str
    epoch: int

    def apply(self, conn: Connection, ctx: WriteContext) -> Released:
        result = conn.execute(
            sa.update(_i).where(_i.c.instance_id == self.instance_id,
                                _i.c.owner_node == self.node_id, _i.c.epoch == self.epoch,
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
                                  (_n.c.expires_at < dialect.now()).label("expired")))
    return [NodeRow(r.node_id, r.hostname, r.pid, r.proc_start, bool(r.expired)) for r in rows]


def _owned_unfinished(conn: Connection, node_id: str,
                      workflow_names: Collection[str]) -> list[Claimed]:
    return _claimed(conn.execute(sa.select(*_CLAIMED).where(
        _i.c.owner_node == node_id, _i.c.status.in_(schema.UNFINISHED_STATUSES),
        _i.c.workflow_name.in_(workflow_names))))


def _orphans_of_unknown(conn: Connection, workflow_names: Collection[str],
                        limit: int) -> list[tuple[str, str]]:
    query = (sa.select(_i.c.instance_id, _i.c.workflow_name)
             .where(_orphaned(), _i.c.workflow_name.not_in(workflow_names)).limit(limit))
    return [(r.instance_id, r.workflow_name) for r in conn.execute(query)]


def _next_free_deadline(conn: Connection, workflow_names: Collection[str]) -> float | None:
    query = (sa.select(sa.func.min(_w.c.deadline))
             .select_from(_w.join(_i, _i.c.instance_id == _w.c.instance_id))
             .where(_claimable(workflow_names)))
    value = conn.execute(query).scalar()
    return None if value is None else float(value)


class SqlLeaseStore(SqlStore):
    """`LeaseStore` on SQLite or PostgreSQL."""

    async def register(self, node_id: str, service_name: str, hostname: str, pid: int,
                       proc_start: str, lease_seconds: float) -> None:
        await self._write(RegisterNode(node_id, service_name, hostname, pid, proc_start,
                                            lease_seconds))

    async def renew(self, node_id: str, lease_seconds: float) -> bool:
        """Extend the lease in a transaction of its own: a heartbeat must not queue
        behind the journal appends of a busy node (nor wait out an outage: it fails,
        and the node judges its lease by when it last succeeded)."""
        return await write_alone(self._db, RenewNode(node_id, lease_seconds))

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
        return await self._db.query(
            lambda conn: _owned_unfinished(conn, node_id, workflow_names), patient=True)

    async def orphans_of_unknown_workflows(self, workflow_names: Collection[str],
                                           limit: int = 1000) -> list[tuple[str, str]]:
        return await self._db.query(
            lambda conn: _orphans_of_unknown(conn, workflow_names, limit), patient=True)

    async def next_free_deadline(self, workflow_names: Collection[str]) -> float | None:
        return await self._db.query(
            lambda conn: _next_free_deadline(conn, workflow_names), patient=True)
