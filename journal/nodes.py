"""Node lease rows and the claiming of instances, as writer jobs.

Each function here returns a job for `GroupCommitWriter.run` (a synchronous
function of a connection, run inside a writer batch), so that every write of a
node goes through its one writer. Claiming bumps the instance's
epoch: from then on, appends of the previous owner are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from edda.journal import schema

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node lease as stored."""

    node_id: str
    hostname: str
    pid: int
    proc_start: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Claimed:
    """An instance this node now owns."""

    instance_id: str
    workflow_name: str
    epoch: int


def register_node(
    node_id: str, service_name: str, hostname: str, pid: int, proc_start: str, lease: float
) -> Callable[[Connection], None]:
    """Job: insert this node's lease row (replacing one it held before)."""

    def job(conn: Connection) -> None:
        now = time.time()
        conn.execute(sa.delete(schema.nodes).where(schema.nodes.c.node_id == node_id))
        conn.execute(
            sa.insert(schema.nodes).values(
                node_id=node_id, service_name=service_name, hostname=hostname, pid=pid,
                proc_start=proc_start, started_at=now, expires_at=now + lease,
            )
        )

    return job


def renew_node(node_id: str, lease: float) -> Callable[[Connection], bool]:
    """Job: extend this node's lease; False if the row is gone (declared dead)."""

    def job(conn: Connection) -> bool:
        n = schema.nodes
        result = conn.execute(
            sa.update(n).where(n.c.node_id == node_id).values(expires_at=time.time() + lease)
        )
        return bool(result.rowcount)

    return job


def remove_nodes(node_ids: Collection[str]) -> Callable[[Connection], None]:
    """Job: delete lease rows and release what those nodes owned."""

    def job(conn: Connection) -> None:
        if not node_ids:
            return
        inst = schema.instances
        conn.execute(sa.delete(schema.nodes).where(schema.nodes.c.node_id.in_(node_ids)))
        conn.execute(
            sa.update(inst).where(inst.c.owner_node.in_(node_ids)).values(owner_node=None)
        )

    return job


def list_nodes(conn: Connection) -> list[NodeRow]:
    """Every node lease row."""
    n = schema.nodes
    rows = conn.execute(
        sa.select(n.c.node_id, n.c.hostname, n.c.pid, n.c.proc_start, n.c.expires_at)
    )
    return [NodeRow(r.node_id, r.hostname, r.pid, r.proc_start, r.expires_at) for r in rows]


def _orphaned() -> sa.ColumnElement[bool]:
    inst = schema.instances
    live = sa.select(schema.nodes.c.node_id)
    return sa.and_(
        inst.c.status.in_(schema.UNFINISHED_STATUSES),
        sa.or_(inst.c.owner_node.is_(None), inst.c.owner_node.not_in(live)),
    )


def claim_orphans(
    node_id: str, workflow_names: Collection[str], limit: int
) -> Callable[[Connection], list[Claimed]]:
    """Job: take unfinished instances nobody live owns, for workflows this node runs."""

    def job(conn: Connection) -> list[Claimed]:
        if not workflow_names:
            return []
        inst = schema.instances
        candidates = (
            sa.select(inst.c.instance_id)
            .where(_orphaned(), inst.c.workflow_name.in_(workflow_names))
            .order_by(inst.c.started_at)
            .limit(limit)
        )
        ids = list(conn.execute(candidates).scalars())
        if not ids:
            return []
        result = conn.execute(
            sa.update(inst)
            .where(inst.c.instance_id.in_(ids), _orphaned())
            .values(owner_node=node_id, epoch=inst.c.epoch + 1)
            .returning(inst.c.instance_id, inst.c.workflow_name, inst.c.epoch)
        )
        return [Claimed(r.instance_id, r.workflow_name, r.epoch) for r in result]

    return job


def owned_unfinished(
    conn: Connection, node_id: str, workflow_names: Collection[str]
) -> list[Claimed]:
    """Unfinished instances this node owns, with the epoch it holds them at."""
    inst = schema.instances
    query = sa.select(inst.c.instance_id, inst.c.workflow_name, inst.c.epoch).where(
        inst.c.owner_node == node_id,
        inst.c.status.in_(schema.UNFINISHED_STATUSES),
        inst.c.workflow_name.in_(workflow_names),
    )
    return [Claimed(r.instance_id, r.workflow_name, r.epoch) for r in conn.execute(query)]


def orphans_of_unknown_workflows(
    conn: Connection, workflow_names: Collection[str], limit: int = 1000
) -> list[tuple[str, str]]:
    """(instance_id, workflow_name) of orphaned instances whose workflow this node lacks."""
    inst = schema.instances
    query = (
        sa.select(inst.c.instance_id, inst.c.workflow_name)
        .where(_orphaned(), inst.c.workflow_name.not_in(workflow_names))
        .limit(limit)
    )
    return [(r.instance_id, r.workflow_name) for r in conn.execute(query)]
