"""The journal contract, run unchanged on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from edda.journal import schema
from edda.journal.appends import Append, InstanceChange, Take
from edda.journal.channels import StoreMessage
from edda.journal.codec import encode_entry, encode_json
from edda.journal.database import Database
from edda.journal.entries import ActivityCompleted, WorkflowStarted, kind_of
from edda.journal.errors import EarlierWriteFailed, FencedError, JournalConflictError
from edda.journal.group_commit import GroupCommitWriter
from edda.journal.leases import ClaimOrphans, RegisterNode, RemoveNodes
from edda.journal.migrations import LATEST_VERSION, current_version, migrate
from edda.journal.partitions import DEFAULT_PARTITIONS, AcquirePartitions, partition_of
from edda.journal.store import SqlJournalStore, read_journal
from edda.journal.waits import StoreEvent
from edda.journal.writes import Write, write_alone

pytestmark = pytest.mark.anyio
NODE = "node-a"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database.open(db_url)
    await migrate(database)
    yield database
    await database.dispose()


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[GroupCommitWriter]:
    w = GroupCommitWriter(db, NODE)
    w.start()
    await w.submit(RegisterNode(NODE, "svc", "host", 1, "", 60))
    await w.submit(AcquirePartitions(NODE, list(range(DEFAULT_PARTITIONS)), 60))
    yield w
    await w.aclose()


class FindsNothing(Take, frozen=True, kw_only=True):
    def find(self, conn: object, ctx: object) -> None:
        return None


def start_op(instance_id: str, *, owner: str = NODE, epoch: int = 1) -> Append:
    entry = WorkflowStarted(workflow_name="wf", input={"x": 1})
    now = time.time()
    row = {
        "instance_id": instance_id, "workflow_name": "wf", "status": "running",
        "input": encode_json({"x": 1}), "owner_node": owner, "epoch": epoch,
        "partition": partition_of(instance_id, DEFAULT_PARTITIONS),
        "started_at": now, "updated_at": now,
    }
    return Append(instance_id, 0, epoch, kind_of(entry), encode_entry(entry), create=row)


def step(instance_id: str, seq: int, *, epoch: int = 1, position: str | None = None) -> Append:
    entry = ActivityCompleted(position=position or f"a:{seq}", call=seq - 1, activity_name="a",
                              result={"n": seq})
    return Append(instance_id, seq, epoch, kind_of(entry), encode_entry(entry),
                  InstanceChange(current_activity_id=entry.position))


async def _migrate_concurrently(db_url: str, starters: int) -> list[int]:
    databases = [Database.open(db_url) for _ in range(starters)]
    try:
        applied = await asyncio.gather(*(migrate(d) for d in databases))
        assert await migrate(databases[0]) == []
        assert await current_version(databases[0]) == LATEST_VERSION
        # Readers connect and read the new schema too.
        await asyncio.gather(*(current_version(d) for d in databases))
        return sorted(v for versions in applied for v in versions)
    finally:
        for d in databases:
            await d.dispose()


async def test_migration_is_idempotent_and_concurrent_safe(db_url: str) -> None:
    assert await _migrate_concurrently(db_url, 8) == list(range(1, LATEST_VERSION + 1))


async def test_many_starters_race_on_a_new_sqlite_file(tmp_path: Path) -> None:
    # Eight starters on a brand-new file, twenty times: switching a new file to WAL
    # used to fail with "database is locked" about one time in fifteen.
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        assert await _migrate_concurrently(url, 8) == list(range(1, LATEST_VERSION + 1))


async def test_append_and_read_back_in_order(db: Database, writer: GroupCommitWriter) -> None:
    await writer.append(start_op("i1"))
    for seq in range(1, 6):
        await writer.append(step("i1", seq))
    records = await read_journal(db, "i1")
    assert [r.seq for r in records] == list(range(6))
    assert isinstance(records[0].entry, WorkflowStarted)
    assert [r.entry.result for r in records[1:]] == [{"n": n} for n in range(1, 6)]  # type: ignore[union-attr]
    row = await SqlJournalStore(db, None).row("i1")
    assert row is not None and row["current_activity_id"] == "a:5"


async def test_append_at_taken_seq_conflicts_alone(db: Database, writer: GroupCommitWriter) -> None:
    await writer.append(start_op("i2"))
    await writer.append(step("i2", 1))
    futures = [writer.append(step("i2", 1, position="dup")), writer.append(step("i2", 2))]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[0], JournalConflictError)
    assert results[1] is None
    records = await read_journal(db, "i2")
    assert [r.entry.position for r in records[1:]] == ["a:1", "a:2"]  # type: ignore[union-attr]


async def test_fenced_node_cannot_append(db: Database, writer: GroupCommitWriter) -> None:
    await writer.append(start_op("i3"))
    part = partition_of("i3", DEFAULT_PARTITIONS)
    # Node A dies; node B takes its partition, which bumps the partition's epoch.
    other = GroupCommitWriter(db, "node-b")
    other.start()
    try:
        await other.submit(RemoveNodes([NODE]))
        await other.submit(RegisterNode("node-b", "svc", "host", 2, "", 60))
        assert await other.submit(AcquirePartitions("node-b", [part], 60)) == {part: 2}
        claimed = await other.submit(ClaimOrphans("node-b", ["wf"], 10))
        assert [(c.instance_id, c.epoch) for c in claimed] == [("i3", 2)]
        with pytest.raises(FencedError):
            await writer.append(step("i3", 1, epoch=1))
        await other.append(step("i3", 1, epoch=2))
    finally:
        await other.aclose()
    records = await read_journal(db, "i3")
    assert len(records) == 2
    row = await SqlJournalStore(db, None).row("i3")
    assert row is not None and (row["owner_node"], row["epoch"]) == ("node-b", 2)


async def test_a_partition_fences_its_owner_once_taken_not_when_it_merely_expired(
    db: Database
) -> None:
    """A node frozen past its lease writes nothing once another node took its
    partition; until then nobody else wrote there, and its writes still commit."""
    w = GroupCommitWriter(db, "frozen")
    w.start()
    other = GroupCommitWriter(db, "node-b")
    other.start()
    try:
        await w.submit(RegisterNode("frozen", "svc", "host", 3, "", 0.3))
        part = partition_of("i8", DEFAULT_PARTITIONS)
        assert await w.submit(AcquirePartitions("frozen", [part], 0.3)) == {part: 1}
        await w.append(start_op("i8", owner="frozen", epoch=1))
        await asyncio.sleep(0.4)  # the database's clock moves past the lease
        await w.append(step("i8", 1, epoch=1))  # expired, but nobody took it
        assert await other.submit(AcquirePartitions("node-b", [part], 60)) == {part: 2}
        with pytest.raises(FencedError):
            await w.append(step("i8", 2, epoch=1))
    finally:
        await w.aclose()
        await other.aclose()
    assert len(await read_journal(db, "i8")) == 2


async def test_claim_skips_instances_of_other_nodes_partitions(
    db: Database, writer: GroupCommitWriter
) -> None:
    await writer.append(start_op("i4"))
    assert await writer.submit(ClaimOrphans("node-b", ["wf"], 10)) == []


async def test_concurrent_appends_share_batches(db: Database, writer: GroupCommitWriter) -> None:
    ids = [f"g{i}" for i in range(50)]
    await asyncio.gather(*(writer.append(start_op(i)) for i in ids))
    before = writer.batches
    await asyncio.gather(*(writer.append(step(i, s)) for s in range(1, 5) for i in ids))
    assert writer.batches - before < 200 / 4
    for i in ids[:3]:
        assert len(await read_journal(db, i)) == 5


async def test_projection_change_applies_status_and_output(
    db: Database, writer: GroupCommitWriter
) -> None:
    await writer.append(start_op("i5"))
    op = step("i5", 1)
    op.change = InstanceChange(status="completed", output=encode_json({"result": 7}))
    await writer.append(op)
    row = await SqlJournalStore(db, None).row("i5")
    assert row is not None
    assert (row["status"], row["output"]) == ("completed", '{"result":7}')


async def test_writer_job_errors_reach_only_their_caller(
    db: Database, writer: GroupCommitWriter
) -> None:
    class Boom(Write[None], frozen=True):
        def apply(self, conn: object, ctx: object) -> None:
            raise RuntimeError("job failed")

    results = await asyncio.gather(
        writer.submit(Boom()), writer.append(start_op("i6")), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert len(await read_journal(db, "i6")) == 1


async def test_a_write_after_a_failed_one_is_refused(db: Database, writer: GroupCommitWriter) -> None:
    """An actor that did not wait for a write never gets a later one committed
    without it: in the same batch or in a later one, the later write is refused."""
    await writer.append(start_op("i7"))
    await writer.append(step("i7", 1))
    # Same batch: the first conflicts (seq 1 is taken), the one after it is refused.
    failed = writer.append(step("i7", 1, position="dup"))
    refused = writer.append(step("i7", 2), after=failed)
    results = await asyncio.gather(failed, refused, return_exceptions=True)
    assert isinstance(results[0], JournalConflictError)
    assert isinstance(results[1], EarlierWriteFailed)
    # A later batch, and a take job: refused as well, and nothing is written.
    taken = writer.submit(FindsNothing(instance_id="i7", seq=2, epoch=1), after=failed)
    with pytest.raises(EarlierWriteFailed):
        await taken
    with pytest.raises(EarlierWriteFailed):
        await writer.append(step("i7", 3), after=refused)
    assert [r.seq for r in await read_journal(db, "i7")] == [0, 1]
    # After a write that succeeded, the next one commits.
    ok = writer.append(step("i7", 2))
    await writer.append(step("i7", 3), after=ok)
    assert [r.seq for r in await read_journal(db, "i7")] == [0, 1, 2, 3]


class FlakyOnce(Write[str], frozen=True):
    """Fails its first attempt the way an unavailable database does, then answers."""

    attempts: list[int]

    def apply(self, conn: object, ctx: object) -> str:
        self.attempts.append(1)
        if len(self.attempts) == 1:
            raise OperationalError("INSERT", None, sqlite3.OperationalError("database is locked"))
        return f"answer of attempt {len(self.attempts)}"


async def test_a_batch_tried_again_answers_from_the_attempt_that_committed(
    db: Database, writer: GroupCommitWriter
) -> None:
    """The database was away for the first attempt: the whole batch, a message store
    included, is applied again, and nothing from the rolled-back attempt reaches a caller."""
    attempts: list[int] = []
    message = StoreMessage("m-once", "chan", {"n": 1}, None, {}, None)
    stored, flaky = await asyncio.gather(writer.submit(message),
                                         writer.submit(FlakyOnce(attempts)))
    assert flaky == "answer of attempt 2" and writer.retries == 1
    assert stored.waiting == [] and stored.subscribers == set()
    count = await db.query(lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(schema.channel_messages)).scalar())
    assert count == 1, "the message is stored once"


async def test_a_batch_that_fails_for_one_write_answers_the_others_once(
    db: Database, writer: GroupCommitWriter
) -> None:
    await writer.append(start_op("i8"))
    await writer.append(step("i8", 1))
    audience, conflict = await asyncio.gather(
        writer.submit(StoreMessage("m-split", "chan", {"n": 2}, None, {}, None)),
        writer.append(step("i8", 1, position="dup")), return_exceptions=True)
    assert isinstance(conflict, JournalConflictError)
    assert not isinstance(audience, BaseException) and audience.waiting == []
    count = await db.query(lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(schema.channel_messages)
        .where(schema.channel_messages.c.message_id == "m-split")).scalar())
    assert count == 1


async def test_a_commit_whose_answer_was_lost_is_not_applied_twice(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after COMMIT went through, and while this node is cut off
    another one declares it dead: the writer still learns the batch committed."""
    real_write = db.write
    calls = 0

    async def answer_lost_once(transaction: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real_write(transaction)
        if calls == 1:
            await write_alone(db, RemoveNodes(["node-lost"]))
            raise ConnectionResetError("the connection dropped during COMMIT")
        return result

    monkeypatch.setattr(db, "write", answer_lost_once)
    writer = GroupCommitWriter(db, "node-lost")
    writer.start()
    try:
        waiting = await writer.submit(StoreEvent("lost.ack", {"id": "e1"}, None, None))
    finally:
        await writer.aclose()
    assert waiting == [] and writer.retries == 0
    count = await db.query(lambda conn: conn.execute(
        sa.select(sa.func.count()).select_from(schema.events)).scalar())
    assert count == 1, "the event is stored once"
