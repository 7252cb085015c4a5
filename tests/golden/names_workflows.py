"""The workflow `names_v0_1.json` was recorded from. Never change its durable calls.

Every step leaves a library type in the journal by name: errors an activity
raised (caught by the workflow) and a result whose type only the journal knows.
``record_names.py`` writes the journal; ``test_golden.py`` replays it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edda import (
    EventTimeoutError,
    NotSerializableError,
    ReceivedEvent,
    RetryExhaustedError,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    workflow,
)

RUNS: Counter[str] = Counter()


@activity
async def reject(ctx: WorkflowContext, sku: str) -> None:
    RUNS["reject"] += 1
    raise TerminalError(f"{sku} is discontinued")


@activity(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.0))
async def reserve(ctx: WorkflowContext, sku: str) -> None:
    RUNS["reserve"] += 1
    raise ConnectionError(f"stock service is down for {sku}")


@activity(retry_policy=RetryPolicy(max_attempts=1))
async def await_approval(ctx: WorkflowContext, sku: str) -> None:
    RUNS["await_approval"] += 1
    raise EventTimeoutError(f"approval.{sku}", 30)


@activity
async def unstorable(ctx: WorkflowContext) -> object:
    RUNS["unstorable"] += 1
    return object()


@activity
async def count_stock(ctx: WorkflowContext, sku: str):  # type: ignore[no-untyped-def]
    # No annotation on purpose: a replay finds the result's type in the journal.
    RUNS["count_stock"] += 1
    return ReceivedEvent(data={"sku": sku, "count": 3}, type="stock.counted",
                         source="warehouse", id="count-1")


@activity
async def summarise(ctx: WorkflowContext, seen: dict[str, Any]) -> dict[str, Any]:
    RUNS["summarise"] += 1
    return seen


@workflow
async def golden_names(ctx: WorkflowContext, sku: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    try:
        await reject(ctx, sku)
    except TerminalError as exc:
        seen["terminal"] = str(exc)
    try:
        await reserve(ctx, sku)
    except RetryExhaustedError as exc:
        seen["exhausted"] = type(exc.__cause__).__name__
    try:
        await await_approval(ctx, sku)
    except RetryExhaustedError as exc:
        if isinstance(exc.__cause__, EventTimeoutError):
            seen["timeout"] = str(exc.__cause__)
    try:
        await unstorable(ctx)
    except NotSerializableError:
        seen["not_serializable"] = True
    counted = await count_stock(ctx, sku)
    seen["counted"] = [type(counted).__name__, counted.data["count"]]
    return await summarise(ctx, seen)
