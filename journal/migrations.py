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
from typing import TYPE_CHECKING

import sqlalchemy as sa
from edda.journal import schema

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edda.journal.database import Database
    from sqlalchemy.ext.asyncio import AsyncConnection

_PG_LOCK_KEY = 0x6564_6461  # "edda"


async def _v1_initial(conn: AsyncConnection) -> None:
    tables = [schema.journal, schema.instances, schema.nodes]
    await conn.run_sync(lambda sync: schema.metadata.create_all(sync, tables=tables))


MIGRATIONS: list[tuple[int, str, Callable[[AsyncConnection], Awaitable[None]]]] = [
    (1, "journal, instances and node leases", _v1_initial),
]

LATEST_VERSION = MIGRATIONS[-1][0]


async def migrate(db: Database) -> list[int]:
    """Bring the schema up to date.

    Returns:
        The versions this call applied (empty when another process did it).
    """
    applied: list[int] = []
    async with db.writer.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        await conn.run_sync(
            lambda sync: schema.metadata.create_all(sync, tables=[schema.schema_version])
        )
        done = set((await conn.execute(sa.select(schema.schema_version.c.version))).scalars())
        for version, description, step in MIGRATIONS:
            if version in done:
                continue
            await step(conn)
            await conn.execute(
                sa.insert(schema.schema_version).values(
                    version=version, description=description, applied_at=time.time()
                )
            )
            applied.append(version)
    return applied


async def current_version(db: Database) -> int:
    """The newest applied migration, or 0 on an empty database."""
    async with db.reader.connect() as conn:
        has_table = await conn.run_sync(
            lambda sync: sa.inspect(sync).has_table(schema.schema_version.name)
        )
        if not has_table:
            return 0
        value = (
            await conn.execute(sa.select(sa.func.max(schema.schema_version.c.version)))
        ).scalar()
        return int(value or 0)
