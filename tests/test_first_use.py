"""An app that never got lifespan events (mounted in another ASGI app, as in Edda's
FastAPI example) initializes itself on first use from any entry point, and then
recovers the unfinished instances of a process that died."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edda import EddaApp, WorkflowContext, activity, send_event, wait_event, workflow
from tests.support.gates import wait_until
from tests.support.web import serve

pytestmark = pytest.mark.anyio

STEPS: list[str] = []


@activity
async def first_use_step(ctx: WorkflowContext, name: str) -> str:
    STEPS.append(name)
    return name


@workflow
async def first_use_flow(ctx: WorkflowContext, name: str) -> object:
    await first_use_step(ctx, name)
    event = await wait_event(ctx, f"first-use.{name}")
    return event.data


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[EddaApp]:
    app = EddaApp("first-use", f"sqlite:///{tmp_path / 'edda.db'}", lease_seconds=5.0)
    yield app
    await app.shutdown()


async def test_a_direct_start_initializes_the_app(fresh: EddaApp) -> None:
    assert fresh.fresh
    iid = await first_use_flow.start(name="direct")
    assert not fresh.fresh and STEPS[-1:] == ["direct"]
    await send_event("first-use.direct", "/t", {"ok": 1})
    assert await fresh.wait_result(iid, timeout=10) == {"ok": 1}


async def test_send_event_initializes_it_too(fresh: EddaApp) -> None:
    await send_event("first-use.nobody", "/t", {"ok": 2})
    assert not fresh.fresh


async def test_a_query_initializes_it(fresh: EddaApp) -> None:
    assert (await fresh.find_instances())["instances"] == []
    assert not fresh.fresh


async def test_mounted_without_lifespan_it_serves_and_recovers(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    url = f"sqlite:///{tmp_path / 'edda.db'}"
    earlier = EddaApp("earlier", url, lease_seconds=0.5)
    await earlier.initialize()
    iid = await first_use_flow.start(name="recovered")
    await earlier.shutdown()  # the instance is left waiting in the database
    edda_app = EddaApp("mounted", url, lease_seconds=0.5)
    outer = Starlette(routes=[Mount("/workflows", app=edda_app)])
    try:
        async with serve(outer, lifespan="off") as base, httpx.AsyncClient() as client:
            answer = await client.post(f"{base}/workflows/", json={
                "specversion": "1.0", "id": "e-1", "type": "first-use.recovered",
                "source": "/t", "data": {"ok": 3}},
                headers={"content-type": "application/cloudevents+json"})
            assert answer.status_code == 202
            assert not edda_app.fresh
            assert await edda_app.wait_result(iid, timeout=15) == {"ok": 3}
    finally:
        await edda_app.shutdown()


async def test_start_detached_returns_at_once_and_the_instance_runs(fresh: EddaApp) -> None:
    await fresh.initialize()
    iid = await first_use_flow.start_detached(name="detached")
    named = await first_use_flow.start_detached(name="named", instance_id="detached-named")
    assert named == "detached-named"
    again = await first_use_flow.start_detached(name="named", instance_id="detached-named")
    assert again == "detached-named"  # the same id starts nothing new
    for instance_id, name in ((iid, "detached"), (named, "named")):
        async def waiting(instance_id: str = instance_id) -> bool:
            found = await fresh.get_instance(instance_id)
            return found is not None and found["status"] == "waiting_for_message"

        await wait_until(waiting, f"{instance_id} to run in the background")
        await send_event(f"first-use.{name}", "/t", {"name": name})
        assert await fresh.wait_result(instance_id, timeout=10) == {"name": name}
    with pytest.raises(TypeError, match=r"start_detached\(name='x'\)"):
        await first_use_flow.start_detached("x")


async def test_a_first_use_given_up_on_leaves_the_start_to_finish(fresh: EddaApp) -> None:
    # A caller that stops waiting (a timeout around its first use) does not cancel the
    # start that others wait for: it finishes and the app works.
    others = asyncio.create_task(fresh.initialize())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fresh.initialize(), 0.001)
    await others
    assert not fresh.fresh
    await fresh.publish("first-use.channel", {"ok": True})


async def test_a_shutdown_during_the_first_start_stops_the_app(fresh: EddaApp) -> None:
    starting = asyncio.create_task(fresh.initialize())
    await asyncio.sleep(0)  # the start is under way
    await fresh.shutdown()
    await starting
    assert fresh._node is None and not fresh._initialized
