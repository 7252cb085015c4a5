"""The lease store contract: node leases by the database's clock, and claims on instances."""

from __future__ import annotations

import asyncio
import time

import pytest

from edda.journal.appends import Append, InstanceChange
from edda.journal.entries import WaitStarted
from edda.journal.partitions import DEFAULT_PARTITIONS, partition_of
from edda.journal.waits import AddWait, StoreEvent
from tests.contract.conftest import NODE, Storage

pytestmark = pytest.mark.anyio


async def test_a_heartbeat_renews_the_node_and_its_partitions_by_the_database_clock(
    storage: Storage
) -> None:
    leases = storage.stores.leases
    assert await leases.register("short", "svc", "host", 2, "", 0.2) == DEFAULT_PARTITIONS
    assert any(r.node_id == "short" and not r.expired for r in await leases.nodes())
    await leases.remove([NODE])  # its partitions are free at once
    assert await leases.acquire("short", [0, 1], 0.2) == {0: 2, 1: 2}
    await asyncio.sleep(0.3)  # real time passes for the database's clock
    assert any(r.node_id == "short" and r.expired for r in await leases.nodes())
    beat = await leases.beat("short", 60.0)
    assert beat.registered and beat.owned == {}, "expired partitions must be taken again"
    # Its own, that nobody took meanwhile: the same epochs.
    assert await leases.acquire("short", [0, 1, 2], 60.0) == {0: 2, 1: 2, 2: 2}
    beat = await leases.beat("short", 60.0)
    assert beat.owned == {0: 2, 1: 2, 2: 2}
    rows = {r.partition: r for r in await leases.partitions()}
    assert rows[0].owner_node == "short" and rows[0].remaining > 50
    assert await leases.acquire("other", [0, 3], 60.0) == {3: 2}, "a live lease is kept"
    await leases.release_partitions("short", [1])
    assert await leases.acquire("other", [1], 60.0) == {1: 3}, "a released one is free"
    await leases.remove(["short"])
    beat = await leases.beat("short", 60.0)
    assert not beat.registered and beat.owned == {}, "a removed node renews nothing"


def test_partitions_are_a_stable_hash_of_the_id() -> None:
    assert partition_of("order-42", 64) == partition_of("order-42", 64) < 64
    assert len({partition_of(f"wf-{i}", 64) for i in range(2000)}) == 64


async def test_only_the_partition_owner_claims(storage: Storage) -> None:
    leases = storage.stores.leases
    await leases.register("node-b", "svc", "host", 3, "", 60.0)
    await storage.create("mine")
    await storage.create("orphan", owner="dead-node")
    await storage.create("free", owner=None)
    await storage.create("ghost", owner=None, workflow="unknown")
    assert await leases.claim_orphans("node-b", ["wf"], 10) == [], "not node B's partitions"
    assert await leases.claim("mine", "node-b", ["wf"]) is None
    claimed = await leases.claim_orphans(NODE, ["wf"], 10)
    assert sorted((c.instance_id, c.epoch) for c in claimed) == [("free", 1), ("orphan", 1)]
    assert await leases.orphans_of_unknown_workflows(NODE, ["wf"]) == [("ghost", "unknown")]
    assert sorted(c.instance_id for c in await leases.owned_unfinished(NODE, ["wf"])) == [
        "free", "mine", "orphan"]
    await leases.remove([NODE])  # NODE dies: its partitions are free
    part = partition_of("mine", DEFAULT_PARTITIONS)
    assert await leases.acquire("node-b", [part], 60.0) == {part: 2}
    claimed_one = await leases.claim("mine", "node-b", ["wf"])
    assert claimed_one is not None and claimed_one.epoch == 2


async def _waiting(storage: Storage, instance_id: str, *, deadline: float | None,
                   kind: str = "timer", key: str | None = None) -> None:
    await storage.create(instance_id)
    entry = WaitStarted(position="w:1", call=0, operation="sleep", wait_type=kind, key=key,
                        deadline=deadline)
    await storage.writer.append(Append.of(
        instance_id, 1, 1, entry, InstanceChange(status="waiting_for_timer"),
        effects=(AddWait(instance_id, "w:1", kind, key, deadline),)))


async def test_release_gives_a_waiting_instance_up_and_due_ones_are_claimed(
    storage: Storage
) -> None:
    leases = storage.stores.leases
    now = time.time()
    await _waiting(storage, "due", deadline=now - 1)
    await _waiting(storage, "later", deadline=now + 3600)
    await storage.create("busy")  # running: not given up
    assert not (await leases.release("busy", NODE, 1)).released
    assert not (await leases.release("due", NODE, 7)).released, "another epoch"
    assert await leases.next_free_deadline(NODE, ["wf"]) is None, "both are resident"
    for instance_id in ("due", "later"):
        released = await leases.release(instance_id, NODE, 1)
        assert released.released and not released.pending
    assert await leases.next_free_deadline(NODE, ["wf"]) == pytest.approx(now - 1)
    assert await leases.claim_due("node-b", ["wf"], now, 10) == [], "not node B's"
    due = await leases.claim_due(NODE, ["wf"], now, 10)
    assert [(c.instance_id, c.epoch) for c in due] == [("due", 1)]
    assert await leases.next_free_deadline(NODE, ["wf"]) == pytest.approx(now + 3600)


async def test_taking_a_partition_frees_its_waiting_instances_for_the_new_owner(
    storage: Storage
) -> None:
    """The timers of a partition taken from a node that died (or from this node
    itself, after it lost its lease) fire on the new owner."""
    leases = storage.stores.leases
    now = time.time()
    await _waiting(storage, "sleeper", deadline=now - 1)  # resident on NODE, which dies
    await leases.register("node-b", "svc", "host", 3, "", 60.0)
    await leases.remove([NODE])
    part = partition_of("sleeper", DEFAULT_PARTITIONS)
    assert await leases.acquire("node-b", [part], 60.0) == {part: 2}
    due = await leases.claim_due("node-b", ["wf"], now, 10)
    assert [(c.instance_id, c.epoch) for c in due] == [("sleeper", 2)]


async def test_release_reports_an_event_that_is_already_there(storage: Storage) -> None:
    leases = storage.stores.leases
    await _waiting(storage, "evt", deadline=None, kind="event", key="paid")
    await storage.writer.submit(StoreEvent("paid", {"type": "paid", "source": "s"}, None, None))
    released = await leases.release("evt", NODE, 1)
    assert released.released and released.pending
