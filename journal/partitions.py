"""Partitions: the unit of ownership, leased to nodes by the database's clock.

Every instance belongs to one partition, ``partition_of(instance_id)``, a
stable hash of its id over the partition count fixed when the database was
made. A node owns a partition while its row names it and has not expired;
once expired, any node may take it, which bumps its **epoch**. Every journal
append checks, in its own transaction, that its instance's partition is still
this node's at the epoch its actor runs at (`edda.journal.group_commit`): a
node frozen past its lease writes nothing once it wakes up, because the nodes
that took its partitions meanwhile changed their epochs. (A partition nobody
took stays its owner's: what it wrote meanwhile is safe, no other node ran it.)

The locks are chosen so that nothing waits on a heartbeat: an append takes a
key-share lock on its partition row, a renewal (which changes no key) does not
conflict with it, and a takeover takes the row for update skipping rows that
are locked, so it never waits behind a long transaction of the old owner: it
takes those partitions at its next attempt, once that transaction has ended.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import WriteContext

#: Partitions of a new database. Fixed for the database's life: ids hash over it.
DEFAULT_PARTITIONS = 64

_p, _n, _i = schema.partitions, schema.nodes, schema.instances


def partition_of(instance_id: str, count: int) -> int:
    """The partition of ``instance_id`` among ``count`` (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(instance_id.encode()) % count


@dataclass(frozen=True, slots=True)
class PartitionRow:
    """A partition lease as stored; ``remaining`` seconds by the database's clock
    (negative once expired)."""

    partition: int
    owner_node: str | None
    epoch: int
    remaining: float


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat renewed: whether the node's row still exists, and the
    partitions still its own, with their epochs."""

    registered: bool
    owned: dict[int, int]


class Heartbeat(Write[Beat], frozen=True):
    """Renew the node's row and, in one statement, every unexpired partition it owns.

    A partition whose lease ran out is not renewed even if nobody took it: its
    owner must take it again, with a new epoch, after stopping what ran at the
    old one."""

    node_id: str
    lease_seconds: float

    def apply(self, conn: Connection, ctx: WriteContext) -> Beat:
        now = ctx.dialect.now()
        until = now + self.lease_seconds
        registered = conn.execute(sa.update(_n).where(_n.c.node_id == self.node_id)
                                  .values(expires_at=until)).rowcount
        rows = conn.execute(sa.update(_p)
                            .where(_p.c.owner_node == self.node_id, _p.c.expires_at > now)
                            .values(expires_at=until).returning(_p.c.partition, _p.c.epoch))
        return Beat(bool(registered), {r.partition: r.epoch for r in rows})


class AcquirePartitions(Write["dict[int, int]"], frozen=True):
    """Take those of ``partitions`` that are free or expired, bumping their epochs;
    returns what was taken, with the epochs. A node that takes back its own
    partition, which nobody took meanwhile (it gave it up locally when it could not
    renew in time), keeps its epoch: no other node wrote there, and what it had
    queued during an outage still commits.

    Waiting instances of the partitions taken are marked as run by nobody, so the
    new owner's timer service and wake-ups find them; their unfinished ones are
    the new owner's to activate."""

    node_id: str
    partitions: list[int]
    lease_seconds: float

    def apply(self, conn: Connection, ctx: WriteContext) -> dict[int, int]:
        if not self.partitions:
            return {}
        now = ctx.dialect.now()
        takeable = sa.and_(_p.c.partition.in_(self.partitions),
                           sa.or_(_p.c.owner_node.is_(None), _p.c.expires_at <= now,
                                  _p.c.owner_node == self.node_id))
        ids = list(conn.execute(ctx.dialect.skip_locked(
            sa.select(_p.c.partition).where(takeable))).scalars())
        if not ids:
            return {}
        rows = conn.execute(sa.update(_p).where(_p.c.partition.in_(ids), takeable)
                            .values(owner_node=self.node_id, expires_at=now + self.lease_seconds,
                                    epoch=sa.case((_p.c.owner_node == self.node_id, _p.c.epoch),
                                                  else_=_p.c.epoch + 1))
                            .returning(_p.c.partition, _p.c.epoch))
        taken = {r.partition: r.epoch for r in rows}
        if taken:
            conn.execute(sa.update(_i).where(_i.c.partition.in_(list(taken)),
                                             _i.c.status.in_(schema.WAITING_STATUSES))
                         .values(owner_node=None))
        return taken


class ReleasePartitions(Write[None], frozen=True):
    """Give partitions up at once (a graceful leave or a rebalance), after their
    actors stopped: free to take without waiting for the lease to run out."""

    node_id: str
    partitions: list[int]

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        if not self.partitions:
            return
        mine = sa.and_(_p.c.partition.in_(self.partitions), _p.c.owner_node == self.node_id)
        ids = list(conn.execute(ctx.dialect.lock(sa.select(_p.c.partition).where(mine)))
                   .scalars())
        if not ids:
            return
        conn.execute(sa.update(_p).where(_p.c.partition.in_(ids))
                     .values(owner_node=None, expires_at=0.0))
        conn.execute(sa.update(_i).where(_i.c.partition.in_(ids),
                                         _i.c.owner_node == self.node_id)
                     .values(owner_node=None))


def free_partitions_of(conn: Connection, node_ids: list[str]) -> None:
    """Free at once the partitions of nodes known to be dead."""
    conn.execute(sa.update(_p).where(_p.c.owner_node.in_(node_ids))
                 .values(owner_node=None, expires_at=0.0))


def list_partitions(conn: Connection, now: sa.ColumnElement[float]) -> list[PartitionRow]:
    """Every partition lease, in partition order."""
    rows = conn.execute(sa.select(_p.c.partition, _p.c.owner_node, _p.c.epoch,
                                  (_p.c.expires_at - now).label("remaining"))
                        .order_by(_p.c.partition))
    return [PartitionRow(r.partition, r.owner_node, r.epoch, float(r.remaining))
            for r in rows]


def partition_count(conn: Connection) -> int:
    """How many partitions the database was made with."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(_p)).scalar() or 0)


def cluster_id(conn: Connection) -> str:
    """The id of the database's cluster (the nodes' transport namespace)."""
    return str(conn.execute(sa.select(schema.cluster.c.cluster_id)).scalar_one())


def owned_by(node_id: str, now: sa.ColumnElement[float]) -> sa.Select[tuple[int]]:
    """The partitions ``node_id`` holds an unexpired lease on (a subquery)."""
    return sa.select(_p.c.partition).where(_p.c.owner_node == node_id, _p.c.expires_at > now)
