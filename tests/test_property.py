"""Property: interrupting a workflow anywhere and recovering it changes nothing.

Random plans (sequential steps, gathers, retried steps, caught failures, a final
failure) run once uninterrupted and once interrupted at a random live step: the
node is shut down while that step runs and a fresh node recovers the instance.
Both runs must end the same, with the same journal (positions, call numbers,
results and errors).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edda import EddaApp, RetryPolicy, TerminalError, WorkflowContext, activity, workflow
from edda.journal.entries import (
    ActivityCompleted,
    ActivityFailed,
    WorkflowCompleted,
    WorkflowFailed,
)
from edda.journal.store import read_journal
from tests.support.gates import Gate, finished, settle, wait_for

LIVE: Counter[str] = Counter()
ATTEMPTS: Counter[str] = Counter()
INTERRUPT: dict[str, tuple[int, Gate]] = {}


@activity(retry_policy=RetryPolicy(initial_interval=0.001, max_attempts=3))
async def pstep(ctx: WorkflowContext, run: str, kind: str, value: int, token: str) -> int:
    LIVE[run] += 1
    target = INTERRUPT.get(run)
    if target is not None and LIVE[run] == target[0]:
        await target[1].hold()
    if kind == "fail":
        raise TerminalError(f"step {value} refused")
    if kind.startswith("flaky"):
        ATTEMPTS[f"{run}:{token}"] += 1
        if ATTEMPTS[f"{run}:{token}"] <= int(kind[-1]):
            raise ConnectionError("transient")
    return value * 2 + 1


@workflow
async def plan_wf(ctx: WorkflowContext, run: str, plan: list[list[Any]], fail_at_end: bool) -> Any:
    out: list[Any] = []
    for i, (kind, values) in enumerate(plan):
        if kind == "gather":
            out.append(list(await asyncio.gather(
                *(pstep(ctx, run, "seq", v, f"{i}.{j}") for j, v in enumerate(values)))))
            continue
        try:
            out.append(await pstep(ctx, run, kind, values[0], str(i)))
        except TerminalError as exc:
            out.append(f"caught: {exc}")
    if fail_at_end:
        raise TerminalError("plan failed at the end")
    return out


steps = st.one_of(
    st.tuples(st.just("seq"), st.lists(st.integers(0, 99), min_size=1, max_size=1)),
    st.tuples(st.just("gather"), st.lists(st.integers(0, 99), min_size=2, max_size=4)),
    st.tuples(st.sampled_from(["flaky1", "flaky2"]), st.lists(st.integers(0, 99), min_size=1,
                                                                max_size=1)),
    st.tuples(st.just("fail"), st.lists(st.integers(0, 99), min_size=1, max_size=1)),
)


def _normal(records: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for r in records:
        e = r.entry
        if isinstance(e, ActivityCompleted):
            out.append(("done", e.call, e.position, e.result))
        elif isinstance(e, ActivityFailed):
            out.append(("failed", e.call, e.position, e.error.qualname, e.error.message))
        elif isinstance(e, WorkflowCompleted):
            out.append(("end", 10**9, "", e.result))
        elif isinstance(e, WorkflowFailed):
            out.append(("end", 10**9, "", e.error.message))
    return sorted(out, key=lambda t: (t[1], t[0]))


async def _journal(app: EddaApp, run: str) -> tuple[str, list[tuple[Any, ...]]]:
    found = await app.find_instances(input_filters={"run": run})
    inst = found["instances"][0]
    return inst["status"], _normal(await read_journal(app.database, inst["instance_id"]))


async def _await_end(app: EddaApp, run: str) -> None:
    (inst,) = (await app.find_instances(input_filters={"run": run}))["instances"]
    await finished(app, inst["instance_id"])


async def _scenario(db: Path, plan: list[Any], fail_at_end: bool, fraction: float) -> None:
    url = f"sqlite:///{db}"
    app = EddaApp("prop", url, lease_seconds=5)
    await app.initialize()
    try:
        await settle(plan_wf.start(run="base", plan=plan, fail_at_end=fail_at_end))
        base = await _journal(app, "base")
    finally:
        await app.shutdown()
    total = LIVE["base"]
    at = max(1, min(total, round(fraction * total)))
    INTERRUPT["cut"] = (at, Gate())
    app = EddaApp("prop", url, lease_seconds=5)
    await app.initialize()
    task = asyncio.create_task(plan_wf.start(run="cut", plan=plan, fail_at_end=fail_at_end))
    await wait_for(INTERRUPT["cut"][1].reached)
    await app.shutdown()
    await settle(task)
    del INTERRUPT["cut"]
    app = EddaApp("prop", url, lease_seconds=5)
    await app.initialize()
    try:
        await _await_end(app, "cut")
        assert await _journal(app, "cut") == base
    finally:
        await app.shutdown()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=1, max_size=5), fail_at_end=st.booleans(),
       fraction=st.floats(0, 1))
def test_interrupted_run_equals_uninterrupted(
    plan: list[Any], fail_at_end: bool, fraction: float
) -> None:
    LIVE.clear()
    ATTEMPTS.clear()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp) / "p.db", [list(s) for s in plan], fail_at_end, fraction))
