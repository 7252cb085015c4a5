"""Each store contract runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from edda.journal.appends import Append
from edda.journal.codec import encode_json
from edda.journal.database import Database
from edda.journal.entries import WorkflowStarted
from edda.journal.group_commit import GroupCommitWriter
from edda.journal.leases import RegisterNode
from edda.journal.migrations import migrate
from edda.journal.partitions import DEFAULT_PARTITIONS, AcquirePartitions, partition_of
from edda.journal.stores import Stores, sql_stores

NODE = "node-a"


@dataclass
class Storage:
    db: Database
    writer: GroupCommitWriter
    stores: Stores

    async def create(self, instance_id: str, *, workflow: str = "wf", status: str = "running",
                     owner: str | None = NODE, epoch: int = 1,
                     input_data: dict[str, Any] | None = None,
                     started_at: float | None = None) -> None:
        """Store an instance with its WorkflowStarted entry."""
        data = {"x": 1} if input_data is None else input_data
        now = time.time() if started_at is None else started_at
        row = {"instance_id": instance_id, "workflow_name": workflow, "status": status,
               "input": encode_json(data), "owner_node": owner, "epoch": epoch,
               "partition": partition_of(instance_id, DEFAULT_PARTITIONS),
               "started_at": now, "updated_at": now}
        await self.writer.append(Append.of(instance_id, 0, epoch,
                                           WorkflowStarted(workflow_name=workflow, input=data),
                                           create=row))


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[Storage]:
    db = Database.open(db_url)
    await migrate(db)
    writer = GroupCommitWriter(db, NODE)
    writer.start()
    await writer.submit(RegisterNode(NODE, "svc", "host", 1, "", 60))
    await writer.submit(AcquirePartitions(NODE, list(range(DEFAULT_PARTITIONS)), 60))
    try:
        yield Storage(db, writer, sql_stores(db, writer))
    finally:
        await writer.aclose()
        await db.dispose()
