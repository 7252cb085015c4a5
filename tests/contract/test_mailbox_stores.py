"""The wait and channel store contracts: events, messages, deliveries, competing claims."""

from __future__ import annotations

import asyncio
import time

import pytest

from edda.journal.appends import Append, InstanceChange
from edda.journal.channels import (
    Consume,
    StoreMessage,
    Subscribe,
    TakeCompeting,
    new_message_id,
    received,
)
from edda.journal.entries import MessageReceived, Subscribed, WaitStarted
from edda.journal.waits import AddWait, MarkDelivered
from tests.contract.conftest import Storage

pytestmark = pytest.mark.anyio


async def _wait_for(storage: Storage, instance_id: str, kind: str, key: str,
                    seq: int = 1) -> None:
    entry = WaitStarted(position=f"w:{seq}", call=seq - 1, operation="wait", wait_type=kind,
                        key=key)
    await storage.writer.append(Append.of(
        instance_id, seq, 1, entry, InstanceChange(status="waiting_for_message"),
        effects=(AddWait(instance_id, f"w:{seq}", kind, key, None),)))


async def test_events_reach_each_waiter_once_in_order(storage: Storage) -> None:
    waits = storage.stores.waits
    since = time.time() - 1
    await storage.create("e1")
    await storage.create("e2")
    await _wait_for(storage, "e1", "event", "paid")
    assert await waits.store_event("paid", {"type": "paid", "n": 1}, None, None) == ["e1"]
    assert await waits.store_event("paid", {"type": "paid", "n": 2}, b"\x00\x01", "e2") == []
    first = await waits.next_event("e1", "paid", since)
    assert first is not None and first.attributes["n"] == 1
    assert await waits.waiters_with_pending_events() == ["e1"]
    await storage.writer.append(Append.of(
        "e1", 2, 1, WaitStarted(position="x", call=9, operation="x", wait_type="x"),
        effects=(MarkDelivered("e1", first.id),)))
    assert await waits.next_event("e1", "paid", since) is None, "n=2 is for e2 only"
    everyone = await waits.next_event("e2", "paid", since)  # e2 has not received n=1 yet
    assert everyone is not None and everyone.id == first.id
    await storage.writer.append(Append.of(
        "e2", 1, 1, WaitStarted(position="x", call=9, operation="x", wait_type="x"),
        effects=(MarkDelivered("e2", first.id),)))
    targeted = await waits.next_event("e2", "paid", since)
    assert targeted is not None and targeted.data_bytes == b"\x00\x01"
    assert await waits.event_waiters("paid", None) == ["e1"]
    assert await waits.purge_events(time.time() + 1) == 2
    assert await waits.next_event("e2", "paid", since) is None


async def _subscribe(storage: Storage, instance_id: str, mode: str, seq: int = 1) -> None:
    entry = Subscribed(position=f"s:{seq}", call=seq - 1, channel="jobs", mode=mode,
                       address="jobs", since=0.0)
    await storage.writer.append(Append.of(instance_id, seq, 1, entry, effects=(
        Subscribe(instance_id, "jobs", "jobs", mode, 0.0),)))


async def test_publish_tells_who_waits_and_broadcast_is_read_in_order(storage: Storage) -> None:
    channels = storage.stores.channels
    await storage.create("b1")
    await _subscribe(storage, "b1", "broadcast")
    await _wait_for(storage, "b1", "channel", "jobs", seq=2)
    audience = await channels.publish(StoreMessage(new_message_id(), "jobs", {"n": 1}, None,
                                                   {}, None))
    assert (audience.waiting, audience.modes, audience.subscribers) == (
        ["b1"], {"broadcast"}, {"b1"})
    await channels.publish(StoreMessage(new_message_id(), "jobs", None, b"raw", {}, None))
    assert await channels.receivers_with_pending_messages() == ["b1"]
    first = await channels.next_broadcast("jobs", "b1", 0.0)
    assert first is not None and first.data == {"n": 1}
    await storage.writer.append(Append.of(
        "b1", 3, 1, received(first, "r:1", 2, "jobs"),
        effects=(Consume("b1", first.row_id, only_receiver=False),)))
    second = await channels.next_broadcast("jobs", "b1", 0.0)
    assert second is not None and second.data_bytes == b"raw"
    assert await channels.purge_messages(time.time() + 1) == 1, "the one still owed stays"


async def test_each_competing_message_goes_to_exactly_one_claimant(storage: Storage) -> None:
    for worker in ("w1", "w2", "w3"):
        await storage.create(worker)
        await _subscribe(storage, worker, "competing")
    for n in range(6):
        await storage.stores.channels.publish(
            StoreMessage(new_message_id(), "jobs", {"n": n}, None, {}, None))
    seqs = {"w1": 2, "w2": 2, "w3": 2}

    async def take(worker: str) -> int | None:
        seq = seqs[worker]
        seqs[worker] += 1
        taken = await storage.writer.submit(TakeCompeting(
            instance_id=worker, seq=seq, epoch=1, address="jobs", channel="jobs",
            position=f"r:{seq}", call=seq))
        if taken is None:
            return None
        assert isinstance(taken.entry, MessageReceived)
        return int(taken.entry.data["n"])

    got = await asyncio.gather(*(take(w) for _ in range(3) for w in ("w1", "w2", "w3")))
    assert sorted(n for n in got if n is not None) == list(range(6))
    assert got.count(None) == 3
