"""The lease store contract: node leases by the database's clock, and claims on instances."""

from __future__ import annotations

import asyncio
import time

import pytest

from edda.journal.appends import Append, InstanceChange
from edda.journal.entries import WaitStarted
from edda.journal.waits import AddWait, StoreEvent
from tests.contract.conftest import NODE, Storage

pytestmark = pytest.mark.anyio


async def test_a_lease_expires_by_the_database_clock_and_renews(storage: Storage) -> None:
    leases = storage.stores.leases
    await leases.register("short", "svc", "host", 2, "", 0.2)
    assert any(r.node_id == "short" and not r.expired for r in await leases.nodes())
    await asyncio.sleep(0.3)  # real time passes for the database's clock
    assert any(r.node_id == "short" and r.expired for r in await leases.nodes())
    assert await leases.renew("short", 60.0)
    assert any(r.node_id == "short" and not r.expired for r in await leases.nodes())
    await leases.remove(["short"])
    assert not await leases.renew("short", 60.0), "a removed lease cannot be renewed"


async def test_claims_take_only_what_nobody_live_owns(storage: Storage) -> None:
    leases = storage.stores.leases
    await leases.register("node-b", "svc", "host", 3, "", 60.0)
    await storage.create("mine")
    await storage.create("orphan", owner="dead-node")
    await storage.create("free", owner=None)
    await storage.create("ghost", owner=None, workflow="unknown")
    claimed = await leases.claim_orphans("node-b", ["wf"], 10)
    assert sorted((c.instance_id, c.epoch) for c in claimed) == [("free", 2), ("orphan", 2)]
    assert await leases.orphans_of_unknown_workflows(["wf"]) == [("ghost", "unknown")]
    assert [c.instance_id for c in await leases.owned_unfinished(NODE, ["wf"])] == ["mine"]
    assert await leases.claim("mine", "node-b", ["wf"]) is None, "a live node owns it"
    await leases.remove([NODE])  # NODE dies: what it owned is free
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
    await leases.register("node-b", "svc", "host", 3, "", 60.0)
    now = time.time()
    await _waiting(storage, "due", deadline=now - 1)
    await _waiting(storage, "later", deadline=now + 3600)
    await storage.create("busy")  # running: not given up
    assert not (await leases.release("busy", NODE, 1)).released
    assert not (await leases.release("due", NODE, 7)).released, "another epoch"
    for instance_id in ("due", "later"):
        released = await leases.release(instance_id, NODE, 1)
        assert released.released and not released.pending
    assert await leases.next_free_deadline(["wf"]) == pytest.approx(now - 1)
    due = await leases.claim_due("node-b", ["wf"], now, 10)
    assert [(c.instance_id, c.epoch) for c in due] == [("due", 2)]
    assert await leases.next_free_deadline(["wf"]) == pytest.approx(now + 3600)


async def test_release_reports_an_event_that_is_already_there(storage: Storage) -> None:
    leases = storage.stores.leases
    await _waiting(storage, "evt", deadline=None, kind="event", key="paid")
    await storage.writer.submit(StoreEvent("paid", {"type": "paid", "source": "s"}, None, None))
    released = await leases.release("evt", NODE, 1)
    assert released.released and released.pending
