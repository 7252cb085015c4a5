"""`edda.runtime.timeline` on journals that real workflows wrote: every kind of
entry becomes a readable step, and a wait is paired with what ended it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from edda import (
    EddaApp,
    EventTimeoutError,
    RetryExhaustedError,
    RetryPolicy,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    publish,
    receive,
    register_compensation,
    send_event,
    sleep,
    subscribe,
    wait_event,
    workflow,
)
from edda.runtime.timeline import format_duration, timeline
from tests.support.gates import finished, wait_until

pytestmark = pytest.mark.anyio

KEYS = {"seq", "kind", "position", "name", "status", "at", "started_at", "duration_ms",
        "attempts", "retries", "summary", "detail"}
_calls: dict[str, int] = {}
_broken = {"on": True}


@compensation
async def tl_release(ctx: WorkflowContext, item: str) -> None:
    return None


@compensation
async def tl_refund(ctx: WorkflowContext, amount: int) -> None:
    return None


@activity
@on_failure(tl_release)
async def tl_reserve(ctx: WorkflowContext, item: str) -> str:
    return f"res-{item}"


@activity(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01))
async def tl_flaky(ctx: WorkflowContext, key: str) -> int:
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] < 3:
        raise ConnectionError(f"down {_calls[key]}")
    return 7


@activity(retry_policy=RetryPolicy(max_attempts=1))
async def tl_ship(ctx: WorkflowContext, item: str) -> str:
    if _broken["on"]:
        raise ValueError(f"no courier for {item}")
    return f"shipped-{item}"


@workflow
async def tl_everything(ctx: WorkflowContext, key: str) -> str:
    await tl_reserve(ctx, "book")
    await register_compensation(ctx, tl_refund, 12)
    await tl_flaky(ctx, key)
    await subscribe(ctx, f"tl-news-{key}")
    await publish(ctx, f"tl-news-{key}", {"n": 1})
    await receive(ctx, f"tl-news-{key}", timeout_seconds=10)
    await wait_event(ctx, f"tl.go.{key}", timeout_seconds=60)
    await sleep(ctx, 0.05)
    try:
        await wait_event(ctx, f"tl.never.{key}", timeout_seconds=0.05)
    except EventTimeoutError:
        pass
    async with ctx.transaction():
        pass
    return await tl_ship(ctx, "book")


@workflow
async def tl_waiter(ctx: WorkflowContext, key: str) -> None:
    await wait_event(ctx, f"tl.wait.{key}", timeout_seconds=3600)


@workflow
async def tl_recurring(ctx: WorkflowContext, round: int) -> int:
    if round == 0:
        await ctx.recur(round=1)
    return round


@workflow
async def tl_shipping(ctx: WorkflowContext, key: str) -> str:
    await tl_flaky(ctx, key)
    return await tl_ship(ctx, key)


def _check_shape(steps: list[dict[str, Any]]) -> None:
    """Every step has every key, one-line summaries, and survives JSON."""
    for step in steps:
        assert set(step) == KEYS, step
        assert step["summary"] and "\n" not in step["summary"], step
        assert isinstance(step["detail"], dict)
    assert json.loads(json.dumps(steps)) == steps
    assert [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)


async def test_every_kind_of_step_of_a_failed_run(
    sqlite_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    _broken["on"] = True
    key = uuid.uuid4().hex[:8]
    instance_id = await tl_everything.start(key=key)
    await send_event(f"tl.go.{key}", "tests", {"approved": True})
    await finished(app, instance_id, statuses=("failed",))
    history = await app.get_history(instance_id)
    steps = timeline(history)
    _check_shape(steps)

    assert [(s["kind"], s["status"]) for s in steps] == [
        ("workflow", "started"),
        ("activity", "completed"),        # tl_reserve
        ("compensation", "registered"),   # tl_refund
        ("activity", "completed"),        # tl_flaky, third attempt
        ("subscribe", "subscribed"),
        ("publish", "sent"),
        ("message", "received"),          # already there: nothing waited
        ("event", "received"),            # a wait, paired with the event that ended it
        ("timer", "fired"),
        ("event", "timed_out"),
        ("transaction", "committed"),
        ("activity", "failed"),           # tl_ship
        ("compensation", "started"),
        ("compensation", "completed"),    # tl_refund, newest first
        ("compensation", "completed"),    # tl_release
        ("workflow", "failed"),
    ]
    by_seq = {item["id"]: item for item in history}
    assert len(steps) < len(history)  # three waits took two entries each

    flaky = steps[3]
    assert flaky["name"] == "tl_flaky" and flaky["attempts"] == 3
    assert flaky["retries"] == [
        {"attempt": 1, "error_type": "ConnectionError", "message": "down 1"},
        {"attempt": 2, "error_type": "ConnectionError", "message": "down 2"}]
    assert flaky["detail"] == {"input": {"args": [key], "kwargs": {}}, "result": 7}
    assert isinstance(flaky["duration_ms"], int) and flaky["started_at"] is not None

    event = steps[7]
    assert event["name"] == f"tl.go.{key}" and event["position"] == by_seq[event["seq"]][
        "activity_id"]
    assert by_seq[event["detail"]["ended_seq"]]["event_type"] == "EventReceived"
    assert event["detail"]["event"]["data"] == {"approved": True}
    assert event["started_at"] == by_seq[event["seq"]]["created_at"]
    assert event["at"] == by_seq[event["detail"]["ended_seq"]]["created_at"]
    assert "after waiting" in event["summary"]

    timer = steps[8]
    assert timer["duration_ms"] >= 40 and timer["detail"]["operation"] == "sleep"
    timed_out = steps[9]
    assert timed_out["duration_ms"] >= 40
    assert timed_out["summary"].startswith("timed out after")

    ship = steps[11]
    assert ship["detail"]["error"]["type"] == "RetryExhaustedError"
    assert "ValueError: no courier for book" in ship["detail"]["error"]["traceback"]
    assert [s["name"] for s in steps[13:15]] == ["tl_refund", "tl_release"]
    end = steps[-1]
    assert end["detail"]["error"]["traceback"].startswith("Traceback")
    assert end["duration_ms"] >= timer["duration_ms"]


async def test_a_cancelled_wait_ends_with_the_cancel(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url)
    await app.initialize()
    instance_id = await tl_waiter.start(key=uuid.uuid4().hex)
    assert await app.cancel_workflow(instance_id, cancelled_by="tests")
    await finished(app, instance_id, statuses=("cancelled",))
    steps = timeline(await app.get_history(instance_id))
    _check_shape(steps)
    assert [(s["kind"], s["status"]) for s in steps] == [
        ("workflow", "started"), ("event", "cancelled"), ("cancel", "cancelling"),
        ("cancel", "cancelled")]
    assert steps[1]["duration_ms"] is not None
    assert steps[-1]["detail"]["cancelled_by"] == "tests"
    assert steps[-1]["detail"]["previous_status"] == "waiting_for_message"


async def test_recur_names_the_new_instance(
    sqlite_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    newest = await tl_recurring.start(round=0)
    page = await app.find_instances(workflow_name="tl_recurring", status="recurred")
    first = page["instances"][0]["instance_id"]
    steps = timeline(await app.get_history(first))
    _check_shape(steps)
    assert steps[-1]["kind"] == "recur" and steps[-1]["status"] == "recurred"
    assert steps[-1]["detail"]["new_instance_id"] == newest
    after = timeline(await app.get_history(newest))
    assert after[0]["detail"]["continued_from"] == first
    assert after[-1]["status"] == "completed" and after[-1]["detail"]["result"] == 1


async def test_a_retried_run_marks_what_no_longer_counts(
    sqlite_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    _broken["on"] = True
    key = uuid.uuid4().hex[:8]
    try:
        with pytest.raises(RetryExhaustedError):
            await tl_shipping.start(key=key)
        _broken["on"] = False
        page = await app.find_instances(workflow_name="tl_shipping")
        instance_id = page["instances"][0]["instance_id"]
        assert await app.retry_workflow(instance_id)

        async def completed() -> bool:
            inst = await app.get_instance(instance_id)
            return inst is not None and inst["status"] == "completed"

        await wait_until(completed, "the retried run to complete")
    finally:
        _broken["on"] = True
    steps = timeline(await app.get_history(instance_id))
    _check_shape(steps)
    assert [(s["kind"], s["status"]) for s in steps] == [
        ("workflow", "started"), ("activity", "completed"), ("activity", "failed"),
        ("workflow", "failed"), ("retry", "retried"), ("activity", "completed"),
        ("workflow", "completed")]
    retry = steps[4]
    assert retry["detail"]["superseded"] == [steps[2]["seq"], steps[3]["seq"]]
    assert steps[2]["detail"]["superseded_by"] == retry["seq"]
    assert steps[3]["detail"]["superseded_by"] == retry["seq"]
    assert "superseded_by" not in steps[1]["detail"]


def test_durations_read_at_a_glance() -> None:
    assert format_duration(None) == ""
    assert format_duration(3) == "3 ms"
    assert format_duration(1234) == "1.2 s"
    assert format_duration(245_000) == "4 m 05 s"
    assert format_duration(2 * 3600_000 + 600_000) == "2 h 10 m"
    assert format_duration(3 * 86400_000 + 4 * 3600_000) == "3 d 4 h"
