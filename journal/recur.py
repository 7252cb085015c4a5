"""Continue-as-new (``ctx.recur``): one transaction ends an instance and starts its successor.

The old instance keeps only its final `WorkflowRecurred` entry; the rest of its
journal moves to ``edda_journal_archive``. The new instance is created with its
`WorkflowStarted` entry, owned by the same node. Subscriptions (except direct
ones, whose address names the old instance), broadcast delivery progress and
competing claims move to the new instance, so a worker loop that recurs loses
no message and receives none twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import WriteContext

_j, _a, _i = schema.journal, schema.journal_archive, schema.instances
_s, _d, _m, _w = (schema.subscriptions, schema.channel_deliveries, schema.channel_messages,
                  schema.waits)


class ContinueAsNew(Write[None], frozen=True):
    """Effect of the `WorkflowRecurred` entry at ``keep_seq``."""

    old_instance_id: str
    keep_seq: int
    new_row: dict[str, Any]
    started_kind: str
    started_body: bytes

    def apply(self, conn: Connection, ctx: WriteContext) -> None:
        old_id, new_id = self.old_instance_id, self.new_row["instance_id"]
        # The new id is in the old one's partition: its actor runs at the same epoch.
        partition = sa.select(_i.c.partition).where(_i.c.instance_id == old_id).scalar_subquery()
        conn.execute(sa.insert(_i).values(**self.new_row, partition=partition))
        conn.execute(sa.insert(_j).values(instance_id=new_id, seq=0, kind=self.started_kind,
                                          body=self.started_body.decode(), created_at=ctx.now))
        earlier = sa.and_(_j.c.instance_id == old_id, _j.c.seq != self.keep_seq)
        conn.execute(sa.insert(_a).from_select(
            ["instance_id", "seq", "kind", "body", "created_at"],
            sa.select(_j.c.instance_id, _j.c.seq, _j.c.kind, _j.c.body, _j.c.created_at)
            .where(earlier)))
        conn.execute(sa.delete(_j).where(earlier))
        conn.execute(sa.delete(_w).where(_w.c.instance_id == old_id))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == old_id, _s.c.mode == "direct"))
        conn.execute(sa.update(_s).where(_s.c.instance_id == old_id).values(instance_id=new_id))
        conn.execute(sa.update(_d).where(_d.c.instance_id == old_id).values(instance_id=new_id))
        conn.execute(sa.update(_m).where(_m.c.claimed_by == old_id).values(claimed_by=new_id))
