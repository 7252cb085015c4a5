"""Bad input at the HTTP edge gets a clear 4xx, the same on SQLite and PostgreSQL,
and changes nothing; an internal error reveals nothing but an error id."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from edda import EddaApp, WorkflowContext, wait_event, workflow
from edda.journal import schema
from tests.support.gates import finished
from tests.support.web import serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
STRUCTURED = {"content-type": "application/cloudevents+json"}


@workflow
async def charge(ctx: WorkflowContext, amount: float, note: str = "") -> float:
    return amount * 2


@workflow(event_handler=True)
async def refund_requested(ctx: WorkflowContext, amount: float) -> float:
    return amount


@workflow
async def awaits_umlaut(ctx: WorkflowContext) -> Any:
    event = await wait_event(ctx, "zahlung.über")
    return event.data


async def _rows(app: EddaApp) -> tuple[int, ...]:
    async with app.database.read() as conn:
        return tuple([int((await conn.execute(sa.select(sa.func.count()).select_from(t)))
                          .scalar_one()) for t in (schema.events, schema.instances,
                                                   schema.journal)])


def _event(**changes: Any) -> bytes:
    body = {"specversion": "1.0", "id": "e-1", "type": "payment.done", "source": "/t",
            "data": {"n": 1}}
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


async def test_malformed_requests_get_400_and_change_nothing(db_url: str,
                                                             make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    before = await _rows(app)
    deep = b"[" * 1000 + b"]" * 1000
    nul_id = "a%00b"
    async with serve(app) as base, httpx.AsyncClient() as client:
        answers = {
            "array body": await client.post(base, content=b"[1, 2]", headers=STRUCTURED),
            "string body": await client.post(base, content=b'"hi"', headers=STRUCTURED),
            "null body": await client.post(base, content=b"null", headers=STRUCTURED),
            "deep event": await client.post(base, content=_event(data=None)[:-1]
                                            + b', "data": ' + deep + b"}", headers=STRUCTURED),
            "deep API input": await client.post(f"{base}/api/workflows/awaits_umlaut",
                                                content=b'{"x": ' + deep + b"}"),
            "no id": await client.post(base, content=_event(id=None), headers=STRUCTURED),
            "no specversion": await client.post(base, content=_event(specversion=None),
                                                headers=STRUCTURED),
            "specversion 0.3": await client.post(base, content=_event(specversion="0.3"),
                                                 headers=STRUCTURED),
            "binary without specversion": await client.post(
                base, content=b"{}", headers={"content-type": "application/json",
                                              "ce-id": "1", "ce-source": "/t",
                                              "ce-type": "payment.done"}),
            "type too long": await client.post(base, content=_event(type="t" * 300),
                                               headers=STRUCTURED),
            "NUL in type": await client.post(base, content=_event(type="pay\u0000ment"),
                                             headers=STRUCTURED),
            "NUL in target": await client.post(base, content=_event(eddainstanceid="a\u0000"),
                                               headers=STRUCTURED),
            "NUL in cancel id": await client.post(f"{base}/cancel/{nul_id}"),
            "NUL in API id": await client.get(f"{base}/api/instances/{nul_id}"),
            "NUL in history id": await client.get(f"{base}/api/instances/{nul_id}/history"),
            "long API id": await client.get(f"{base}/api/instances/{'i' * 300}"),
            "NUL in a query": await client.get(f"{base}/api/instances?workflow_name=a%00"),
            "NUL in a page token": await client.get(
                f"{base}/api/instances?page_token=1.0%7C%7Ca%00"),
        }
    for what, response in answers.items():
        assert response.status_code == 400, (what, response.status_code, response.text)
        body = response.json()
        assert body["retryable"] is False, what
        assert body["error"] and len(body["error"]) <= 300, what
        assert "SELECT" not in response.text and "INSERT" not in response.text, what
    assert answers["no id"].json()["error_type"] == "MissingRequiredFields"
    assert "ce-specversion" in answers["binary without specversion"].json()["error"]
    assert "0.3" in answers["specversion 0.3"].json()["error"]
    assert "300 characters" in answers["type too long"].json()["error"]
    assert "control character" in answers["NUL in type"].json()["error"]
    assert "nests deeper" in answers["deep API input"].json()["error"]
    assert await _rows(app) == before


async def test_binary_mode_headers_are_utf8(db_url: str, make_app: MakeApp) -> None:
    app = make_app(db_url)
    await app.initialize()
    iid = await awaits_umlaut.start()
    async with serve(app) as base, httpx.AsyncClient() as client:
        response = await client.post(base, content=b'{"paid": true}', headers=[
            (b"content-type", b"application/json"), (b"ce-specversion", b"1.0"),
            (b"ce-id", b"u-1"), (b"ce-source", b"/t"),
            (b"ce-type", "zahlung.über".encode())])
        not_utf8 = await client.post(base, content=b"{}", headers=[
            (b"content-type", b"application/json"), (b"ce-specversion", b"1.0"),
            (b"ce-id", b"u-2"), (b"ce-source", b"/t"), (b"ce-type", b"zahlung.\xff")])
    assert response.status_code == 202, response.text
    assert (await finished(app, iid))["output_data"]["result"] == {"paid": True}
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json()["error"]


async def test_an_internal_error_reveals_only_an_error_id(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: object) -> bool:
        raise RuntimeError("secret detail: SELECT * FROM edda_instances")

    app = make_app(sqlite_url, authorize=broken)
    await app.initialize()
    with caplog.at_level(logging.ERROR, "edda.http"):
        async with serve(app) as base, httpx.AsyncClient() as client:
            response = await client.get(f"{base}/api/instances")
    assert response.status_code == 500
    body = response.json()
    assert body["error_type"] == "InternalError" and body["retryable"] is False
    assert "secret" not in response.text and "SELECT" not in response.text
    assert body["error_id"] in body["error"]
    assert f"error id {body['error_id']}" in caplog.text and "secret detail" in caplog.text


async def test_an_open_app_says_so_once_and_a_protected_one_does_not(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    from edda.http import bearer_token

    open_app = make_app(sqlite_url)
    closed_app = make_app(sqlite_url, authorize=bearer_token("t"), authorize_events=True)
    with caplog.at_level(logging.INFO, "edda.http"):
        for app in (open_app, closed_app):
            async with serve(app) as base, httpx.AsyncClient() as client:
                for _ in range(2):
                    assert (await client.get(f"{base}/health")).status_code == 200
    warnings = [r for r in caplog.records if "without an authorize hook" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "POST /cancel/{id}" in warnings[0].getMessage()


async def test_input_is_validated_against_plain_annotations(db_url: str,
                                                           make_app: MakeApp) -> None:
    import pydantic

    app = make_app(db_url)
    await app.initialize()
    before = await _rows(app)
    with pytest.raises(pydantic.ValidationError, match="argument 'amount'") as caught:
        await charge.start(amount="lots")
    assert caught.value.errors()[0]["loc"] == ("amount",)
    with pytest.raises(pydantic.ValidationError, match="argument 'note'"):
        await charge.start(amount=1.0, note=5)
    with pytest.raises(ValueError, match="control character"):
        await charge.start(instance_id="a\x00b", amount=1.0)
    async with serve(app) as base, httpx.AsyncClient() as client:
        api = await client.post(f"{base}/api/workflows/charge", json={"amount": "lots"})
        event = await client.post(base, headers=STRUCTURED, content=json.dumps({
            "specversion": "1.0", "id": "r-1", "type": "refund_requested", "source": "/t",
            "data": {"amount": "lots"}}).encode())
    for response in (api, event):
        assert response.status_code == 400, response.text
        assert "amount" in response.json()["error"], response.text
    assert await _rows(app) == before
    iid = await charge.start(amount="1.5")  # pydantic's rules: a numeric string fits
    assert (await app.wait_result(iid, timeout=10)) == 3.0
