"""The outbox store contract: relayers claim, settle and clean up, and never step on each other."""

from __future__ import annotations

import time

import pytest

from edda.journal.appends import Append
from edda.journal.entries import ActivityCompleted
from edda.journal.outbox import InsertOutbox, Settled
from tests.contract.conftest import Storage

pytestmark = pytest.mark.anyio


def _row(event_id: str, *, due: float) -> dict[str, object]:
    return {"event_id": event_id, "event_type": "t", "event_source": "s", "data": "{}",
            "data_bytes": None, "content_type": "application/json", "instance_id": "o1",
            "status": "pending", "attempts": 0, "next_attempt_at": due, "created_at": due}


async def test_claim_settle_and_clean_up(storage: Storage) -> None:
    outbox = storage.stores.outbox
    now = time.time()
    await storage.create("o1")
    await storage.writer.append(Append.of(
        "o1", 1, 1, ActivityCompleted(position="a:1", call=0, activity_name="a"),
        effects=(InsertOutbox([_row("ev-1", due=now - 2), _row("ev-2", due=now - 1),
                               _row("ev-3", due=now + 3600)]),)))
    assert await outbox.next_due() == pytest.approx(now - 2)
    claimed = await outbox.claim("relayer-a", 10, 30.0)
    assert [(r.event_id, r.attempts) for r in claimed] == [("ev-1", 1), ("ev-2", 1)]
    assert await outbox.claim("relayer-b", 10, 30.0) == [], "claimed rows are not due"
    assert await outbox.settle("relayer-b", [Settled(claimed[0].id, "published")]) == 0, \
        "only the claimant settles"
    changed = await outbox.settle("relayer-a", [
        Settled(claimed[0].id, "published"),
        Settled(claimed[1].id, "pending", "503", next_attempt_at=now - 0.5)])
    assert changed == 2
    again = await outbox.claim("relayer-b", 10, 30.0)
    assert [(r.event_id, r.attempts) for r in again] == [("ev-2", 2)]
    assert await outbox.delete_published(time.time() + 1) == 1


async def test_a_claim_whose_deadline_passed_is_due_again(storage: Storage) -> None:
    outbox = storage.stores.outbox
    now = time.time()
    await storage.create("o1")
    await storage.writer.append(Append.of(
        "o1", 1, 1, ActivityCompleted(position="a:1", call=0, activity_name="a"),
        effects=(InsertOutbox([_row("ev-9", due=now - 1)]),)))
    (first,) = await outbox.claim("dead-relayer", 10, 0.0)  # its claim ends at once
    (second,) = await outbox.claim("relayer-b", 10, 30.0)
    assert (second.event_id, second.attempts) == ("ev-9", 2)
    assert await outbox.settle("dead-relayer", [Settled(first.id, "published")]) == 0
