"""Property: what an activity returned or raised, the workflow sees the same on
replay as it saw live.

Random JSON values (nested, unicode, big integers, floats) pass through an
activity, and an exception with a random message and attribute is raised by
another; the workflow notes what it saw, then waits in a third activity while
its node shuts down. A new node replays the instance from its journal, and its
notes must equal the live run's, and the values sent.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edda import EddaApp, TerminalError, WorkflowContext, activity, workflow

OBSERVED: list[Any] = []
HOLD: dict[str, Any] = {"block": True, "reached": None}


class CodedError(TerminalError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@activity
async def echo(ctx: WorkflowContext, value: Any) -> Any:
    return value


@activity
async def refuse(ctx: WorkflowContext, message: str, code: int) -> None:
    raise CodedError(message, code)


@activity
async def hold(ctx: WorkflowContext) -> None:
    if HOLD["block"]:
        HOLD["reached"].set()
        await asyncio.Event().wait()  # until the node shuts down


@workflow
async def carries(ctx: WorkflowContext, value: Any, message: str, code: int) -> str:
    got = await echo(ctx, value)
    try:
        await refuse(ctx, message, code)
        error: Any = None
    except CodedError as exc:
        error = [type(exc).__name__, list(exc.args), exc.code]
    OBSERVED.append([got, error])
    await hold(ctx)
    return "done"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)


def _app(url: str) -> EddaApp:
    return EddaApp("prop-fidelity", url, workflows=[carries])


async def _scenario(db: Path, value: Any, message: str, code: int) -> None:
    url = f"sqlite:///{db}"
    OBSERVED.clear()
    HOLD["block"] = True
    HOLD["reached"] = reached = asyncio.Event()
    app = _app(url)
    await app.initialize()
    task = asyncio.create_task(carries.start(value=value, message=message, code=code))
    await asyncio.wait_for(reached.wait(), 10)
    iid = (await app.find_instances(workflow_name="carries"))["instances"][0]["instance_id"]
    await app.shutdown()
    await asyncio.gather(task, return_exceptions=True)
    HOLD["block"] = False
    app = _app(url)
    await app.initialize()
    try:
        assert await app.wait_result(iid, timeout=10) == "done"
    finally:
        await app.shutdown()
    live, replayed = OBSERVED
    assert replayed == live
    assert live == [value, ["CodedError", [message], code]]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=json_values, message=st.text(max_size=30), code=st.integers(-1000, 1000))
def test_a_replay_sees_what_the_live_run_saw(value: Any, message: str, code: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp) / "f.db", value, message, code))
