"""Fuzzing the HTTP edge from its OpenAPI description: random requests on every
operation it describes (ids with any characters, query values of any kind, JSON
of any shape and depth, arbitrary CloudEvent headers, bytes that are not JSON),
on SQLite and PostgreSQL, through the app's own ASGI interface.

Whatever arrives: no 5xx, no body carrying SQL or table names, and a request
that was refused changed no row.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import httpx
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edda import EddaApp, WorkflowContext, wait_event, workflow
from edda.journal import schema
from edda.runtime.openapi import OPENAPI

T = TypeVar("T")


@workflow
async def fuzz_target(ctx: WorkflowContext, amount: float, note: str = "") -> Any:
    return (await wait_event(ctx, "fuzz.go")).data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
ids = st.text(max_size=300) | st.sampled_from(["fuzz-1", "a.b", "x" * 256, "\x00"])
bodies = (json_values.map(lambda v: json.dumps(v).encode())
          | st.binary(max_size=64)
          | st.integers(1, 1200).map(lambda n: b"[" * n + b"]" * n)
          | st.fixed_dictionaries({
              "specversion": st.sampled_from(["1.0", "0.3", ""]),
              "id": ids, "type": st.sampled_from(["fuzz.go", "fuzz_target"]) | ids,
              "source": ids, "data": json_values,
          }, optional={"eddainstanceid": ids}).map(lambda v: json.dumps(v).encode()))
headers = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from(["application/cloudevents+json", "application/json",
                                     "text/plain", "application/cloudevents-batch+json"]),
    "ce-specversion": st.sampled_from(["1.0", "0.3"]),
    "ce-id": st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=10),
    "ce-type": st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=300),
    "ce-source": st.just("/fuzz"),
})


#: (path template, method, query parameters) of every operation the app describes.
ROUTES = [(path, method.upper(), [p["name"] for p in op.get("parameters", [])
                                  if p.get("in") == "query"])
          for path, operations in OPENAPI["paths"].items()
          for method, op in operations.items()]
PLACEHOLDER = re.compile(r"\{(\w+)\}")
KNOWN = {"name": ["fuzz_target"], "instance_id": ["fuzz-1"], "any": ["", "events"]}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    """A request built from the OpenAPI description: an operation, its path
    parameters (known values or anything), its query parameters (some, with any
    value), mostly its own method, any body and headers."""
    template, method, query = draw(st.sampled_from(ROUTES))

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return quote(draw(st.sampled_from(KNOWN.get(name, [])) | ids), safe="")

    path = PLACEHOLDER.sub(fill, template)
    chosen = draw(st.lists(st.sampled_from(query), unique=True)) if query else []
    if chosen:
        path += "?" + "&".join(f"{q}={quote(draw(ids), safe='')}" for q in chosen)
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    return method, path, draw(bodies), draw(headers)


async def _rows(app: EddaApp) -> tuple[int, ...]:
    """Rows only a request creates (journals also grow in the background, as the
    instances an earlier request started or cancelled run on)."""
    async with app.database.read() as conn:
        return tuple([int((await conn.execute(sa.select(sa.func.count()).select_from(t)))
                          .scalar_one()) for t in (schema.events, schema.instances,
                                                   schema.channel_messages)])


def test_the_edge_never_fails_and_refusals_change_nothing(db_url: str) -> None:
    """The app runs in an event loop of its own thread; hypothesis drives requests
    into it one at a time."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)

    app = EddaApp("fuzz", db_url, workflows=[fuzz_target])
    seen: dict[int, int] = {}

    async def setup() -> httpx.AsyncClient:
        await app.initialize()
        await fuzz_target.start(instance_id="fuzz-1", amount=1.0)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://edge")

    async def check(client: httpx.AsyncClient,
                    request: tuple[str, str, bytes, dict[str, str]]) -> None:
        method, path, body, extra = request
        before = await _rows(app)
        response = await client.request(method, path, content=body, headers=[
            (k.encode(), v.encode()) for k, v in extra.items()])
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (request, response.status_code, response.text)
        text = response.text
        # what the client sent may be echoed back; nothing else
        sent = repr(request) + unquote(path)
        for marker in ("SELECT", "INSERT", "edda_"):
            assert marker not in text or marker in sent, (request, text)
        if response.status_code >= 400:
            assert await _rows(app) == before, (request, response.text)

    client = run(setup())
    try:
        @settings(max_examples=1500, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(requests())
        @example(("GET", "/api/instances?workflow_name=%00", b"", {}))  # found by it once
        @example(("GET", "/api/instances?page_token=1.0%7C%7Ca%00", b"", {}))
        @example(("POST", "/cancel/edda_", b"null", {}))
        def one(request: tuple[str, str, bytes, dict[str, str]]) -> None:
            run(check(client, request))

        one()
    finally:
        run(client.aclose())
        run(app.shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    assert seen.get(400, 0) > 50, seen  # the fuzzer reached the checks
