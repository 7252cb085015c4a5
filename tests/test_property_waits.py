"""Property: sends, timeouts and restarts in any order never lose or double an event.

Two workflows each collect ``total`` events of one type, with a short timeout
on every wait that they catch and retry. The test interleaves sends, pauses
(long enough for timeouts to fire and instances to be passivated) and node
restarts at random. Both workflows must end with exactly the sent sequence:
nothing lost, nothing twice, in order.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edda import EddaApp, EventTimeoutError, WorkflowContext, send_event, wait_event, workflow


@workflow
async def collector(ctx: WorkflowContext, total: int) -> list[int]:
    got: list[int] = []
    while len(got) < total:
        try:
            event = await wait_event(ctx, "tick", timeout_seconds=0.03)
        except EventTimeoutError:
            continue
        got.append(event.data["n"])
    return got


def _app(url: str) -> EddaApp:
    return EddaApp("prop-waits", url, lease_seconds=5, idle_seconds=0.02)


async def _scenario(db: Path, ops: list[tuple[str, float]]) -> None:
    url = f"sqlite:///{db}"
    total = max(1, sum(op == "send" for op, _ in ops))
    app = _app(url)
    await app.initialize()
    ids = [await collector.start(total=total), await collector.start(total=total)]
    sent = 0
    try:
        for op, pause in ops:
            if op == "send":
                await send_event("tick", "prop", {"n": sent})
                sent += 1
            elif op == "restart":
                await app.shutdown()
                app = _app(url)
                await app.initialize()
            else:
                await asyncio.sleep(pause)  # let time pass: timeouts fire, actors passivate
        while sent < total:
            await send_event("tick", "prop", {"n": sent})
            sent += 1
        results = {iid: await app.wait_result(iid, timeout=10) for iid in ids}
        assert results == {iid: list(range(total)) for iid in ids}
    finally:
        await app.shutdown()


ops = st.lists(
    st.tuples(st.sampled_from(["send", "send", "restart", "pause"]), st.floats(0.01, 0.08)),
    min_size=1, max_size=10,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops)
def test_no_event_is_lost_or_doubled(ops: list[tuple[str, float]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp) / "w.db", ops))
