"""The HTTP edge over real HTTP: uvicorn on 127.0.0.1, httpx and the cloudevents SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from edda import EddaApp, WorkflowContext, wait_event, workflow
from edda.http import bearer_token
from edda.journal import schema
from tests.support.gates import finished, wait_until
from tests.support.web import serve

pytestmark = pytest.mark.anyio
ENDED = ("completed", "failed", "cancelled")
MakeApp = Callable[..., EddaApp]
TOKEN = "s3cret"


@workflow
async def awaits_payment(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    event = await wait_event(ctx, "payment.done")
    return {"order_id": order_id, "paid": event.data, "source": event.source,
            "extensions": event.extensions}


@workflow(event_handler=True)
async def order_placed(ctx: WorkflowContext, order_id: str, amount: int) -> str:
    return f"{order_id}:{amount}"


async def _status(app: EddaApp, instance_id: str) -> str:
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return str(inst["status"])


async def _count(app: EddaApp, table: sa.Table) -> int:
    async with app.database.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


@pytest.mark.parametrize("mode", ["structured", "binary"])
async def test_cloudevents_sdk_resumes_waiting_workflow(db_url: str, make_app: MakeApp,
                                                        mode: str) -> None:
    app = make_app(db_url)
    await app.initialize()
    iid = await awaits_payment.start(order_id="o-1")
    event = CloudEvent(attributes={"type": "payment.done", "source": "/payments",
                                   "eddainstanceid": iid}, data={"amount": 42})
    message = to_structured_event(event) if mode == "structured" else to_binary_event(event)
    async with serve(app) as base, httpx.AsyncClient() as client:
        response = await client.post(f"{base}/any/path", content=message.body,
                                     headers=message.headers)
    assert response.status_code == 202
    assert response.content == b'{"status": "accepted"}'
    assert response.headers["content-type"] == "application/json"
    inst = await finished(app, iid, statuses=ENDED)
    assert inst["output_data"]["result"] == {
        "order_id": "o-1", "paid": {"amount": 42}, "source": "/payments",
        "extensions": {"eddainstanceid": iid}}


async def test_raw_structured_event_over_plain_http(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await awaits_payment.start(order_id="o-2")
    body = {"specversion": "1.0", "id": "e-1", "type": "payment.done", "source": "/raw",
            "data": {"amount": 7}}
    async with serve(app) as base, httpx.AsyncClient() as client:
        response = await client.post(base, json=body,
                                     headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 202
    inst = await finished(app, iid, statuses=ENDED)
    assert inst["output_data"]["result"]["paid"] == {"amount": 7}


async def test_rejected_requests_change_nothing(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url, max_body_bytes=2048, authorize=bearer_token(TOKEN))
    await app.initialize()
    iid = await awaits_payment.start(order_id="o-3")
    events_before = await _count(app, schema.events)
    async with serve(app) as base, httpx.AsyncClient() as client:
        missing_source = await client.post(
            base, headers={"content-type": "application/cloudevents+json"},
            content=json.dumps({"specversion": "1.0", "id": "1", "type": "payment.done"}))
        not_json = await client.post(base, content=b"{nope",
                                     headers={"content-type": "application/cloudevents+json"})
        oversize = await client.post(
            base, headers={"content-type": "application/cloudevents+json"},
            content=json.dumps({"specversion": "1.0", "id": "2", "type": "payment.done",
                                "source": "/x", "data": "x" * 4096}))
        cancel_without_token = await client.post(f"{base}/cancel/{iid}")
        cancel_wrong_token = await client.post(f"{base}/cancel/{iid}",
                                               headers={"authorization": "Bearer nope"})
        api_without_token = await client.post(f"{base}/api/workflows/awaits_payment",
                                              json={"order_id": "x"})
        get_not_allowed = await client.get(f"{base}/somewhere")
    assert missing_source.status_code == 400
    assert missing_source.json()["retryable"] is False
    assert "source" in missing_source.json()["error"]
    assert not_json.status_code == 400 and not_json.json()["error_type"] == "InvalidStructuredJSON"
    assert oversize.status_code == 413 and "2048" in oversize.json()["error"]
    assert cancel_without_token.status_code == 401
    assert cancel_wrong_token.status_code == 401
    assert api_without_token.status_code == 401
    assert get_not_allowed.status_code == 405
    assert await _count(app, schema.events) == events_before
    assert await _status(app, iid) == "waiting_for_message"
    assert len((await app.find_instances(workflow_name="awaits_payment"))["instances"]) == 1


async def test_cancel_route_and_json_api(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url, authorize=bearer_token(TOKEN))
    await app.initialize()
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with serve(app) as base, httpx.AsyncClient(headers=auth) as client:
        health = await client.get(f"{base}/health", headers={"authorization": ""})
        assert health.status_code == 200 and health.json()["status"] == "ok"
        spec = (await client.get(f"{base}/openapi.json")).json()
        assert "/api/workflows/{name}" in spec["paths"]

        started = await client.post(f"{base}/api/workflows/awaits_payment",
                                    json={"order_id": "o-4"})
        assert started.status_code == 202
        iid = started.json()["instance_id"]
        await wait_until(lambda: _is(app, iid, "waiting_for_message"), "the instance to wait")
        status = (await client.get(f"{base}/api/instances/{iid}")).json()
        assert status["status"] == "waiting_for_message"
        assert status["input_data"] == {"order_id": "o-4"}
        result = (await client.get(f"{base}/api/instances/{iid}/result")).json()
        assert result == {"instance_id": iid, "status": "waiting_for_message",
                          "finished": False}

        cancelled = await client.post(f"{base}/cancel/{iid}")
        assert cancelled.status_code == 200
        assert cancelled.json() == {"status": "cancelled", "instance_id": iid}
        again = await client.post(f"{base}/cancel/{iid}")
        assert again.status_code == 400
        inst = await finished(app, iid, statuses=ENDED)
        assert inst["status"] == "cancelled"
        assert inst["output_data"]["cancelled_by"] == "api_user"
        history = (await client.get(f"{base}/api/instances/{iid}/history")).json()["history"]
        assert history[0]["event_type"] == "WorkflowStarted"
        assert history[-1]["event_type"] == "WorkflowCancelled"

        listed = (await client.get(f"{base}/api/instances",
                                   params={"workflow_name": "awaits_payment"})).json()
        assert [i["instance_id"] for i in listed["instances"]] == [iid]
        bad_args = await client.post(f"{base}/api/workflows/awaits_payment",
                                     json={"wrong": 1})
        assert bad_args.status_code == 400 and "order_id" in bad_args.json()["error"]
        unknown = await client.post(f"{base}/api/workflows/nope", json={})
        assert unknown.status_code == 404
        missing = await client.get(f"{base}/api/instances/nope")
        assert missing.status_code == 404
    assert len((await app.find_instances(workflow_name="awaits_payment"))["instances"]) == 1


async def _is(app: EddaApp, instance_id: str, status: str) -> bool:
    return await _status(app, instance_id) == status


handled: list[dict[str, Any]] = []


async def test_event_handler_workflow_and_on_event(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    seen = asyncio.Event()

    @app.on_event("audit.logged")
    async def audit(event: Any) -> None:
        handled.append(dict(event.get_attributes()) | {"data": event.get_data()})
        seen.set()

    await app.initialize()
    placed = {"specversion": "1.0", "id": "p-1", "type": "order_placed", "source": "/shop",
              "data": {"order_id": "o-5", "amount": 3}}
    audit_event = {"specversion": "1.0", "id": "a-1", "type": "audit.logged", "source": "/a",
                   "data": {"who": "me"}}
    bad_input = {"specversion": "1.0", "id": "p-2", "type": "order_placed", "source": "/shop",
                 "data": {"order_id": "o-6"}}
    ce = {"content-type": "application/cloudevents+json"}
    async with serve(app) as base, httpx.AsyncClient() as client:
        assert (await client.post(base, json=placed, headers=ce)).status_code == 202
        assert (await client.post(base, json=audit_event, headers=ce)).status_code == 202
        rejected = await client.post(base, json=bad_input, headers=ce)
    assert rejected.status_code == 400 and "amount" in rejected.json()["error"]
    found = (await app.find_instances(workflow_name="order_placed"))["instances"]
    assert len(found) == 1
    inst = await finished(app, found[0]["instance_id"], statuses=ENDED)
    assert inst["output_data"]["result"] == "o-5:3"
    await asyncio.wait_for(seen.wait(), 10)
    assert handled[-1]["type"] == "audit.logged" and handled[-1]["data"] == {"who": "me"}


async def test_mounted_under_starlette_with_lifespan(sqlite_url: str) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = EddaApp("mounted", sqlite_url, lease_seconds=5.0)

    @workflow
    async def mounted_wait(ctx: WorkflowContext) -> Any:
        return (await wait_event(ctx, "mount.ping")).data

    outer = Starlette(routes=[Mount("/workflows", app=app)],
                      lifespan=lambda _: _edda_lifespan(app))
    async with serve(outer, lifespan="on") as base, httpx.AsyncClient() as client:
        assert app._initialized
        assert (await client.get(f"{base}/workflows/health")).status_code == 200
        iid = await mounted_wait.start()
        response = await client.post(
            f"{base}/workflows/events",
            json={"specversion": "1.0", "id": "m-1", "type": "mount.ping", "source": "/m",
                  "data": {"ok": True}},
            headers={"content-type": "application/cloudevents+json"})
        assert response.status_code == 202
        assert (await finished(app, iid, statuses=ENDED))["output_data"]["result"] == {"ok": True}
    assert not app._initialized  # the lifespan shut it down


@asynccontextmanager
async def _edda_lifespan(app: EddaApp) -> AsyncIterator[None]:
    async with app:
        yield


async def test_asgi_lifespan_under_uvicorn(sqlite_url: str) -> None:
    app = EddaApp("lifespan", sqlite_url, lease_seconds=5.0)
    async with serve(app, lifespan="on") as base, httpx.AsyncClient() as client:
        assert app._initialized
        assert (await client.get(f"{base}/health")).json()["node"] == app.worker_id
    assert not app._initialized


def test_wsgi_server_accepts_cloudevents(sqlite_url: str) -> None:
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from edda import create_wsgi_app

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    app = EddaApp("wsgi", sqlite_url, lease_seconds=5.0)
    wsgi = create_wsgi_app(app)
    server = make_server("127.0.0.1", 0, wsgi, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        event = {"specversion": "1.0", "id": "w-1", "type": "wsgi.ping", "source": "/w",
                 "data": {"n": 1}}
        response = httpx.post(base, json=event, timeout=10,
                              headers={"content-type": "application/cloudevents+json"})
        assert response.status_code == 202
        assert response.content == b'{"status": "accepted"}'
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        asyncio.run_coroutine_threadsafe(app.shutdown(), wsgi.loop).result(10)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        types = list(conn.execute(sa.select(schema.events.c.type)).scalars())
    engine.dispose()
    assert types == ["wsgi.ping"]


async def test_on_event_handlers_get_edda_s_sdk_event_however_it_arrived(
    sqlite_url: str, make_app: MakeApp
) -> None:
    from cloudevents.v1.http import CloudEvent

    app = make_app(sqlite_url)
    got: list[Any] = []

    @app.on_event("stock.counted")
    async def counted(event: Any) -> None:
        got.append(event)

    assert app.event_handlers == {"stock.counted": [counted]}
    await app.initialize()
    structured = {"specversion": "1.0", "id": "s-1", "type": "stock.counted", "source": "/wh",
                  "region": "north", "data": {"count": 1}}
    binary = {"ce-specversion": "1.0", "ce-id": "b-1", "ce-type": "stock.counted",
              "ce-source": "/wh", "ce-region": "south", "content-type": "application/json"}
    async with serve(app) as base, httpx.AsyncClient() as client:
        assert (await client.post(base, json=structured, headers={
            "content-type": "application/cloudevents+json"})).status_code == 202
        assert (await client.post(base, content=b'{"count": 2}', headers=binary)
                ).status_code == 202
    await app.handle_cloudevent({"type": "stock.counted", "source": "/wh", "id": "m-1",
                                 "region": "east", "data": {"count": 3}}, wait=True)
    await wait_until(lambda: len(got) == 3, "the three handler calls")
    for event, (event_id, region, count) in zip(
            sorted(got, key=lambda e: e.get_data()["count"]),
            [("s-1", "north", 1), ("b-1", "south", 2), ("m-1", "east", 3)], strict=True):
        assert isinstance(event, CloudEvent)
        assert event["id"] == event_id and event["type"] == "stock.counted"
        assert event["region"] == region and event.get_data() == {"count": count}
