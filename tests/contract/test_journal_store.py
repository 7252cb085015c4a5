"""The journal store contract: journals, the instance projection and cancel requests."""

from __future__ import annotations

import time

import pytest

from edda.journal.appends import Append, InstanceChange
from edda.journal.entries import ActivityCompleted, WorkflowStarted
from edda.journal.store import InstanceFilter
from tests.contract.conftest import NODE, Storage

pytestmark = pytest.mark.anyio


async def _step(storage: Storage, instance_id: str, seq: int) -> None:
    entry = ActivityCompleted(position=f"a:{seq}", call=seq - 1, activity_name="a",
                              result={"n": seq})
    await storage.writer.append(Append.of(instance_id, seq, 1, entry,
                                          InstanceChange(current_activity_id=entry.position)))


async def test_records_come_back_in_order_with_the_projection(storage: Storage) -> None:
    journal = storage.stores.journal
    await storage.create("j1")
    for seq in (1, 2, 3):
        await _step(storage, "j1", seq)
    records = await journal.records("j1")
    assert [r.seq for r in records] == [0, 1, 2, 3]
    assert isinstance(records[0].entry, WorkflowStarted)
    last = await journal.last_record("j1")
    assert last is not None and last.seq == 3
    assert await journal.next_seq("j1") == 4
    assert await journal.next_seq("nobody") == 0
    row = await journal.row("j1")
    assert row is not None and row["current_activity_id"] == "a:3"
    assert await journal.row("nobody") is None
    raw = await journal.raw_records("j1")
    assert [r["kind"] for r in raw] == ["workflow_started", *["activity_completed"] * 3]


async def test_rows_filter_and_page_newest_first(storage: Storage) -> None:
    journal = storage.stores.journal
    now = time.time()
    for i in range(5):
        await storage.create(f"p{i}", workflow="pager" if i % 2 == 0 else "other",
                             input_data={"order": {"id": f"o{i}", "vip": i == 4}},
                             started_at=now + i)
    pagers = await journal.list_rows(InstanceFilter(workflow_name="pager"), limit=10, after=None)
    assert [r["instance_id"] for r in pagers] == ["p4", "p2", "p0"]
    first = await journal.list_rows(InstanceFilter(), limit=2, after=None)
    assert [r["instance_id"] for r in first] == ["p4", "p3", "p2"]  # limit + 1: there is more
    after = (first[1]["started_at"], first[1]["instance_id"])
    rest = await journal.list_rows(InstanceFilter(), limit=10, after=after)
    assert [r["instance_id"] for r in rest] == ["p2", "p1", "p0"]
    by_json = await journal.list_rows(InstanceFilter(input_filters={"order.id": "o3"}),
                                      limit=10, after=None)
    assert [r["instance_id"] for r in by_json] == ["p3"]
    by_bool = await journal.list_rows(InstanceFilter(input_filters={"order.vip": True}),
                                      limit=10, after=None)
    assert [r["instance_id"] for r in by_bool] == ["p4"]


async def test_a_cancel_request_is_recorded_once_and_refused_when_it_cannot_apply(
    storage: Storage
) -> None:
    journal = storage.stores.journal
    await storage.create("c1", status="waiting_for_message")
    await storage.create("c2", status="completed")
    accepted = await journal.request_cancel("c1", "ops", 100.0)
    assert accepted.accepted and accepted.request is not None
    assert (accepted.request.by, accepted.request.previous_status) == (
        "ops", "waiting_for_message")
    again = await journal.request_cancel("c1", "someone", 101.0)
    assert not again.accepted and "already requested by 'ops'" in again.reason
    assert not (await journal.request_cancel("c2", "ops", 100.0)).accepted
    assert not (await journal.request_cancel("nobody", "ops", 100.0)).accepted
    activation = await journal.activation("c1")
    assert activation[1] == accepted.request
    assert await journal.pending_cancels(NODE) == [("c1", accepted.request)]
    assert await journal.pending_cancels("another-node") == []
