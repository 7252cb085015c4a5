"""Property: whatever fails and wherever the node stops, the compensations that
finish are exactly those of the completed steps, newest first, once each.

Random plans mix ``@on_failure`` activities and ``register_compensation`` in the
body; a random step fails (or the workflow fails at its end); the node is shut
down at up to two random points (in an activity or in a compensation) and a fresh
node recovers the instance each time.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edda import (
    EddaApp,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    register_compensation,
    workflow,
)
from tests.support.gates import Gate, settle, wait_until

LIVE: Counter[str] = Counter()
FINISHED: defaultdict[str, list[str]] = defaultdict(list)
INTERRUPT: dict[str, tuple[int, Gate]] = {}


async def _live(run: str) -> None:
    LIVE[run] += 1
    target = INTERRUPT.get(run)
    if target is not None and LIVE[run] == target[0]:
        await target[1].hold()


@compensation
async def pundo(ctx: WorkflowContext, run: str, name: str) -> None:
    await _live(run)
    FINISHED[run].append(name)


@activity
@on_failure(pundo)
async def pdo(ctx: WorkflowContext, run: str, name: str) -> str:
    await _live(run)
    return name


@activity
async def pplain(ctx: WorkflowContext, run: str, name: str, fail: bool) -> str:
    await _live(run)
    if fail:
        raise TerminalError(f"{name} failed")
    return name


@workflow
async def saga_plan(ctx: WorkflowContext, run: str, plan: list[str], fail_at: int) -> None:
    for i, kind in enumerate(plan):
        name = f"{kind}{i}"
        if i == fail_at:
            await pplain(ctx, run, name, True)
        if kind == "auto":
            await pdo(ctx, run, name)
        else:
            await register_compensation(ctx, pundo, run=run, name=name)
            await pplain(ctx, run, name, False)
    raise TerminalError("the plan always fails")


async def _ended(app: EddaApp, run: str) -> bool:
    found = (await app.find_instances(input_filters={"run": run}))["instances"]
    return bool(found) and found[0]["status"] == "failed"


async def _scenario(db: Path, plan: list[str], fail_at: int, cuts: list[float]) -> None:
    url = f"sqlite:///{db}"
    app = EddaApp("saga-prop", url, lease_seconds=5)
    await app.initialize()
    try:  # an uninterrupted run, to count the live steps
        await settle(saga_plan.start(run="base", plan=plan, fail_at=fail_at))
    finally:
        await app.shutdown()
    total = LIVE["base"]
    points = sorted({max(1, min(total, round(c * total))) for c in cuts})
    app = EddaApp("saga-prop", url, lease_seconds=5)
    await app.initialize()
    task: asyncio.Task[Any] | None = asyncio.create_task(
        saga_plan.start(run="cut", plan=plan, fail_at=fail_at))
    for at in points:
        if at <= LIVE["cut"]:
            continue
        gate = Gate()
        INTERRUPT["cut"] = (at, gate)
        current = app
        ended = asyncio.create_task(
            wait_until(lambda: _ended(current, "cut"), "the end", 30))  # noqa: B023
        done, _ = await asyncio.wait({asyncio.create_task(gate.reached.wait()), ended},
                                     timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        await settle(ended)
        del INTERRUPT["cut"]
        if not gate.reached.is_set():
            assert done, "neither the cut point nor the end was reached"
            break
        await app.shutdown()  # the node stops inside an activity or a compensation
        if task is not None:
            await settle(task)
            task = None
        app = EddaApp("saga-prop", url, lease_seconds=5)
        await app.initialize()
    try:
        if task is not None:
            await settle(task)
        await wait_until(lambda: _ended(app, "cut"), "the cut run to fail", 30)
    finally:
        await app.shutdown()
    expected = [f"{kind}{i}" for i, kind in enumerate(plan) if i < fail_at][::-1]
    assert FINISHED["base"] == expected
    assert FINISHED["cut"] == expected, f"points {points} of {total}"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(st.sampled_from(["auto", "reg"]), min_size=1, max_size=5),
       fail_at=st.integers(0, 5), cuts=st.lists(st.floats(0, 1), min_size=1, max_size=2))
def test_compensations_are_those_of_completed_steps_newest_first_once(
    plan: list[str], fail_at: int, cuts: list[float]
) -> None:
    LIVE.clear()
    FINISHED.clear()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp) / "s.db", plan, min(fail_at, len(plan)), cuts))
