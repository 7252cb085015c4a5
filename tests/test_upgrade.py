"""A database written by the previous release (schema v7, before partitions)
upgrades on start: its instances are spread over partitions and resume, once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import Connection

from edda import EddaApp, WorkflowContext, activity, workflow
from edda.journal import schema
from edda.journal.codec import encode_entry, encode_json
from edda.journal.database import Database
from edda.journal.entries import WorkflowStarted, kind_of
from edda.journal.migrations import LATEST_VERSION, MIGRATIONS, current_version
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of

pytestmark = pytest.mark.anyio
RUNS: Counter[str] = Counter()


@activity
async def count_run(ctx: WorkflowContext, key: str) -> str:
    RUNS[key] += 1
    return key


@workflow
async def old_wf(ctx: WorkflowContext, key: str) -> str:
    return await count_run(ctx, key)


def _as_v7(conn: Connection, keys: list[str]) -> None:
    """The schema and rows the previous release wrote: no partitions anywhere."""
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    for version, description, step in MIGRATIONS[:7]:
        step(conn)
        conn.execute(sa.insert(schema.schema_version).values(
            version=version, description=description, applied_at=time.time()))
    conn.execute(sa.text("DROP INDEX edda_instances_partition"))
    conn.execute(sa.text('ALTER TABLE edda_instances DROP COLUMN "partition"'))
    now = time.time()
    conn.execute(sa.insert(schema.nodes).values(
        node_id="old-node", service_name="svc", hostname="gone", pid=1, proc_start="",
        started_at=now, expires_at=now + 3600))
    for key in keys:
        started = WorkflowStarted(workflow_name="old_wf", input={"key": key})
        conn.execute(sa.text(
            "INSERT INTO edda_instances (instance_id, workflow_name, status, input, "
            "owner_node, epoch, started_at, updated_at) VALUES "
            "(:iid, 'old_wf', 'running', :input, 'old-node', 3, :now, :now)"),
            {"iid": key, "input": encode_json({"key": key}), "now": now})
        conn.execute(sa.insert(schema.journal).values(
            instance_id=key, seq=0, kind=kind_of(started),
            body=encode_entry(started).decode(), created_at=now))


async def test_a_v7_database_upgrades_and_its_instances_resume_once(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    keys = [f"old_wf-{n}" for n in range(40)]
    db = Database.open(db_url)
    try:
        await db.write(lambda conn: _as_v7(conn, keys))
        assert await current_version(db) == 7
    finally:
        await db.dispose()
    RUNS.clear()
    app = make_app(db_url, workflows=[old_wf])
    await app.initialize()  # migrates, takes every partition, resumes what it finds
    for key in keys:
        assert await app.wait_result(key, timeout=15) == key
    assert RUNS == Counter(dict.fromkeys(keys, 1)), "each resumed instance ran once"
    assert await current_version(app.database) == LATEST_VERSION

    def partitions(conn: Connection) -> dict[str, int]:
        rows = conn.execute(sa.select(schema.instances.c.instance_id,
                                      schema.instances.c.partition))
        return {r.instance_id: r.partition for r in rows}

    stored = await app.database.query(partitions)
    assert stored == {key: partition_of(key, DEFAULT_PARTITIONS) for key in keys}
    assert len(set(stored.values())) > 16, "spread over the partitions"
