"""Schema migrations, applied automatically when a node starts.

Each migration runs once, in order, in one transaction that also records it in
``edda_schema``. Concurrent starters are serialised by the database itself:
SQLite takes the write lock with ``BEGIN IMMEDIATE`` (the writer engine's
begin), PostgreSQL a transaction-scoped advisory lock. The loser of the race
finds the version already recorded and does nothing. A migration, once
released, is never edited; changes come as a new migration.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import sqlalchemy as sa

from edda.journal import schema
from edda.journal.dialects import dialect_of
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_count, partition_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

    from edda.journal.database import Database


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.journal, schema.instances, schema.nodes])


def _v2_waits_and_events(conn: Connection) -> None:
    schema.metadata.create_all(
        conn, tables=[schema.waits, schema.events, schema.event_deliveries]
    )


def _v3_channels_and_recur(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[
        schema.channel_messages, schema.subscriptions, schema.channel_deliveries,
        schema.journal_archive,
    ])


def _v4_channel_queue_index(conn: Connection) -> None:
    # A v3 created after this index joined the schema already has it.
    schema.channel_queue_index.create(conn, checkfirst=True)


def _v5_cancel_requests(conn: Connection) -> None:
    # A v1 created after this column joined the schema already has it.
    columns = {c["name"] for c in sa.inspect(conn).get_columns(schema.instances.name)}
    if "cancel_request" not in columns:
        conn.execute(sa.text(f"ALTER TABLE {schema.instances.name} ADD COLUMN cancel_request TEXT"))


def _v6_outbox(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.outbox])


def _v7_writer_marks(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.writer_marks])


def _v8_partitions(conn: Connection) -> None:
    # Instances of an older database are spread over the partitions by their ids.
    schema.metadata.create_all(conn, tables=[schema.partitions])
    if not partition_count(conn):
        conn.execute(sa.insert(schema.partitions),
                     [{"partition": p, "owner_node": None, "epoch": 0, "expires_at": 0.0}
                      for p in range(DEFAULT_PARTITIONS)])
    count = partition_count(conn)
    table = schema.instances
    columns = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    if "partition" not in columns:
        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN \"partition\" INTEGER "
                             "NOT NULL DEFAULT 0"))
    schema.instances_partition_index.create(conn, checkfirst=True)
    ids = list(conn.execute(sa.select(table.c.instance_id)).scalars())
    # Nobody runs them until a node takes their partition (no node of the old
    # version may still run against the upgraded database).
    for start in range(0, len(ids), 1000):
        conn.execute(sa.update(table).where(table.c.instance_id == sa.bindparam("iid"))
                     .values(partition=sa.bindparam("part"), owner_node=None),
                     [{"iid": i, "part": partition_of(i, count)} for i in ids[start:start + 1000]])
    conn.execute(sa.delete(schema.nodes))


def _v9_cluster_id(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.cluster])
    if conn.execute(sa.select(sa.func.count()).select_from(schema.cluster)).scalar() == 0:
        conn.execute(sa.insert(schema.cluster).values(cluster_id=uuid.uuid4().hex[:16]))


def _v10_outbox_extensions(conn: Connection) -> None:
    # A v6 created after this column joined the schema already has it.
    columns = {c["name"] for c in sa.inspect(conn).get_columns(schema.outbox.name)}
    if "extensions" not in columns:
        conn.execute(sa.text(f"ALTER TABLE {schema.outbox.name} ADD COLUMN extensions TEXT"))


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "journal, instances and node leases", _v1_initial),
    (2, "durable waits, events and their deliveries", _v2_waits_and_events),
    (3, "channels, subscriptions, deliveries and the journal archive", _v3_channels_and_recur),
    (4, "an index for competing receives: claim by channel and claimant", _v4_channel_queue_index),
    (5, "cancel requests on instances", _v5_cancel_requests),
    (6, "the transactional outbox", _v6_outbox),
    (7, "writer marks: did a batch commit when its connection dropped?", _v7_writer_marks),
    (8, "partition leases; instances spread over partitions", _v8_partitions),
    (9, "the cluster id that namespaces transport subjects", _v9_cluster_id),
    (10, "CloudEvent extension attributes of outbox events", _v10_outbox_extensions),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def _migrate(conn: Connection) -> list[int]:
    dialect_of(conn.dialect.name).serialize_migrations(conn)
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    done = set(conn.execute(sa.select(schema.schema_version.c.version)).scalars())
    applied: list[int] = []
    for version, description, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(
            sa.insert(schema.schema_version).values(
                version=version, description=description, applied_at=time.time()
            )
        )
        applied.append(version)
    return applied


async def migrate(db: Database) -> list[int]:
    """Bring the schema up to date.

    Returns:
        The versions this call applied (empty when another process did it).
    """
    return await db.write(_migrate)


async def current_version(db: Database) -> int:
    """The newest applied migration, or 0 on an empty database."""
    async with db.read() as conn:
        has_table = await conn.run_sync(
            lambda sync: sa.inspect(sync).has_table(schema.schema_version.name)
        )
        if not has_table:
            return 0
        value = (
            await conn.execute(sa.select(sa.func.max(schema.schema_version.c.version)))
        ).scalar()
        return int(value or 0)
