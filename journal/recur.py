"""Continue-as-new (``ctx.recur``): one transaction ends an instance and starts its successor.

The old instance keeps only its final `WorkflowRecurred` entry; the rest of its
journal moves to ``edda_journal_archive``. The new instance is created with its
`WorkflowStarted` entry, owned by the same node. Subscriptions (except direct
ones, whose address names the old instance), broadcast delivery progress and
competing claims move to the new instance, so a worker loop that recurs loses
no message and receives none twice.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from edda.journal import schema

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

_j, _a, _i = schema.journal, schema.journal_archive, schema.instances
_s, _d, _m, _w = (schema.subscriptions, schema.channel_deliveries, schema.channel_messages,
                  schema.waits)


def continue_as_new(old_instance_id: str, keep_seq: int, new_row: dict[str, Any],
                    started_kind: str, started_body: bytes) -> Callable[[Connection], None]:
    """Effect of the `WorkflowRecurred` entry at ``keep_seq``."""
    new_id = new_row["instance_id"]

    def effect(conn: Connection) -> None:
        now = time.time()
        conn.execute(sa.insert(_i).values(**new_row))
        conn.execute(sa.insert(_j).values(instance_id=new_id, seq=0, kind=started_kind,
                                          body=started_body.decode(), created_at=now))
        earlier = sa.and_(_j.c.instance_id == old_instance_id, _j.c.seq != keep_seq)
        conn.execute(sa.insert(_a).from_select(
            ["instance_id", "seq", "kind", "body", "created_at"],
            sa.select(_j.c.instance_id, _j.c.seq, _j.c.kind, _j.c.body, _j.c.created_at)
            .where(earlier)))
        conn.execute(sa.delete(_j).where(earlier))
        conn.execute(sa.delete(_w).where(_w.c.instance_id == old_instance_id))
        conn.execute(sa.delete(_s).where(_s.c.instance_id == old_instance_id,
                                         _s.c.mode == "direct"))
        conn.execute(sa.update(_s).where(_s.c.instance_id == old_instance_id)
                     .values(instance_id=new_id))
        conn.execute(sa.update(_d).where(_d.c.instance_id == old_instance_id)
                     .values(instance_id=new_id))
        conn.execute(sa.update(_m).where(_m.c.claimed_by == old_instance_id)
                     .values(claimed_by=new_id))

    return effect
