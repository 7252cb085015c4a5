"""The MCP integration with the real MCP SDK client: over streamable HTTP (uvicorn on
127.0.0.1) and over stdio (a child process), and across a SIGKILL."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.shared.exceptions import MCPError

from edda import EddaApp
from edda.http import bearer_token
from edda.integrations.mcp import EddaMCPServer
from tests.support import mcp_service
from tests.support.gates import wait_until
from tests.support.web import serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
ROOT = Path(__file__).resolve().parents[1]
ORDER = {"order_id": "A-1", "items": [{"sku": "pen", "quantity": 2, "price": 1.5},
                                      {"sku": "ink", "quantity": 1, "price": 4.0}]}


@asynccontextmanager
async def mcp_http(server: EddaMCPServer, token: str | None = None, mode: str = "auto"
                   ) -> AsyncIterator[tuple[Client, str]]:
    """A connected SDK client of ``server`` served by uvicorn, and the base URL. The
    client speaks the newest protocol (``mode="auto"``) or the handshake-era one
    (``"legacy"``)."""
    async with serve(server.asgi_app(), lifespan="on") as base:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with httpx2.AsyncClient(headers=headers) as http, \
                Client(streamable_http_client(f"{base}/mcp", http_client=http),
                       mode=mode) as client:
            yield client, base


def text_of(result: Any) -> str:
    assert len(result.content) == 1
    text: str = result.content[0].text
    return text


def instance_id_of(result: Any) -> str:
    assert not result.is_error, text_of(result)
    found: str = result.structured_content["instance_id"]
    assert f"Instance ID: {found}" in text_of(result)
    return found


async def post_event(base: str, event_type: str, data: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{base}/", json={
            "specversion": "1.0", "id": f"{event_type}-1", "source": "tests", "type": event_type,
            "data": data}, headers={"content-type": "application/cloudevents+json"})
    assert answer.status_code == 202, answer.text


# -- tools, schemas, start, status, result --------------------------------------------

async def test_each_durable_tool_is_four_tools_with_edda_names_and_schemas(sqlite_url: str) -> None:
    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {f"{n}{suffix}" for n in ("place_order", "approve_order", "failing_order")
                          for suffix in ("", "_status", "_result", "_cancel")}
    start = tools["place_order"]
    assert start.description == "Place an order: reserve its stock and charge for it."
    assert tools["approve_order"].description == "Approve an order and ship it once approved"
    assert tools["failing_order"].description == "Start failing_order workflow"
    assert tools["place_order_status"].description == "Check status of place_order workflow"
    assert tools["place_order_result"].description == \
        "Get result of place_order workflow (if completed)"
    assert tools["place_order_cancel"].description == \
        "Cancel place_order workflow (if running or waiting)"
    schema = start.input_schema
    assert schema["type"] == "object" and schema["required"] == ["order"]
    assert set(schema["properties"]) == {"order", "express"}      # no ctx
    order_ref = schema["properties"]["order"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["$defs"][order_ref]["properties"]) == {"order_id", "items"}
    assert schema["properties"]["express"]["default"] is False
    assert tools["place_order_status"].input_schema["required"] == ["instance_id"]
    waiting = tools["place_order_result"].input_schema["properties"]["wait_seconds"]
    assert waiting["type"] == "number" and waiting["maximum"] == 600
    for tool in tools.values():
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    assert "result" in tools["place_order_result"].output_schema["properties"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_start_status_and_result_of_a_workflow_that_completes(sqlite_url: str,
                                                                    mode: str) -> None:
    async with mcp_http(mcp_service.build(sqlite_url), mode=mode) as (client, _):
        assert client.protocol_version.startswith("2026" if mode == "auto" else "2025")
        started = await client.call_tool("place_order", {"order": ORDER, "express": True})
        iid = instance_id_of(started)
        assert text_of(started) == (
            f"Workflow 'place_order' started successfully.\nInstance ID: {iid}\n\n"
            f"Use 'place_order_status' tool with instance_id='{iid}' to check progress.\n"
            "Use 'place_order_result' tool to get the final result once completed.")
        assert started.structured_content == {"instance_id": iid, "workflow_name": "place_order",
                                              "status": "completed"}
        status = await client.call_tool("place_order_status", {"instance_id": iid})
        assert not status.is_error
        assert text_of(status) == ("Workflow Status: completed\nCurrent Activity: charge:1\n"
                                   "Completed Activities: 2\nSuggested Poll Interval: 10000ms\n"
                                   f"Instance ID: {iid}")
        assert status.structured_content["completed_activities"] == 2
        result = await client.call_tool("place_order_result", {"instance_id": iid})
    expected = {"order_id": "A-1", "total": 7.0, "receipt": "charged 7.00", "express": True}
    assert not result.is_error
    assert text_of(result) == f"Workflow Result:\n{ {'result': expected}!r}"
    assert result.structured_content == {"instance_id": iid, "workflow_name": "place_order",
                                         "status": "completed", "finished": True,
                                         "result": expected}


async def test_result_waits_for_the_end_and_progress_reports_each_step(
        make_app: MakeApp, sqlite_url: str) -> None:
    server = mcp_service.build(make_app(sqlite_url))
    async with mcp_http(server) as (client, base):
        iid = instance_id_of(await client.call_tool("approve_order", {"order_id": "B-1"}))
        status = await client.call_tool("approve_order_status", {"instance_id": iid})
        assert status.structured_content["status"].startswith("waiting_for_")
        not_yet = await client.call_tool("approve_order_result",
                                         {"instance_id": iid, "wait_seconds": 0.2})
        assert not not_yet.is_error
        assert text_of(not_yet).startswith("Workflow not completed yet. Current status: waiting_")
        assert not_yet.structured_content["finished"] is False

        steps: list[tuple[float, str | None]] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            steps.append((done, message))

        answers: list[Any] = []

        async def wait_for_result() -> None:
            answers.append(await client.call_tool(
                "approve_order_result", {"instance_id": iid, "wait_seconds": 30},
                progress_callback=progress))

        async with anyio.create_task_group() as group:
            group.start_soon(wait_for_result)
            await wait_until(lambda: len(steps) == 1, "the first step to be reported")
            assert not answers, "the result tool answered before the workflow ended"
            await post_event(base, "approval.B-1", {"approver": "ann"})  # CloudEvents, same app
    (answer,) = answers
    assert not answer.is_error, text_of(answer)
    assert answer.structured_content["result"] == {"order_id": "B-1",
                                                   "shipped": "B-1 shipped, approved by ann"}
    assert steps == [(1.0, "reserve_stock:1 completed"), (2.0, "ship:1 completed")]


async def test_start_reports_progress_while_it_runs(sqlite_url: str) -> None:
    steps: list[str | None] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        steps.append(message)

    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        started = await client.call_tool("place_order", {"order": ORDER},
                                         progress_callback=progress)
    assert not started.is_error
    assert steps == ["reserve_stock:1 completed", "charge:1 completed"]


# -- cancel, unknown instances, failures ------------------------------------------------

async def test_cancel_a_waiting_workflow_runs_its_compensations(sqlite_url: str) -> None:
    mcp_service.RELEASED.clear()
    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        iid = instance_id_of(await client.call_tool("approve_order", {"order_id": "C-1"}))
        cancelled = await client.call_tool("approve_order_cancel", {"instance_id": iid})
        assert not cancelled.is_error, text_of(cancelled)
        assert text_of(cancelled) == (
            f"Workflow 'approve_order' cancelled successfully.\nInstance ID: {iid}\n"
            "Compensations executed.\n\nThe workflow has been stopped and any side effects "
            "have been rolled back.")
        assert mcp_service.RELEASED == ["C-1"]
        assert cancelled.structured_content == {"instance_id": iid,
                                                "workflow_name": "approve_order",
                                                "status": "cancelled", "cancelled": True}
        again = await client.call_tool("approve_order_cancel", {"instance_id": iid})
        assert again.is_error
        assert text_of(again) == (f"Cannot cancel workflow: {iid}\nCurrent status: cancelled\n"
                                  "Only running or waiting workflows can be cancelled.")
        result = await client.call_tool("approve_order_result", {"instance_id": iid})
        assert result.is_error and "Current status: cancelled" in text_of(result)


async def test_unknown_instances_and_bad_arguments_are_tool_errors(sqlite_url: str) -> None:
    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        for tool in ("approve_order_status", "approve_order_result", "approve_order_cancel"):
            answer = await client.call_tool(tool, {"instance_id": "no-such-order"})
            assert answer.is_error
            assert text_of(answer) == "Workflow instance not found: no-such-order"
        bad = await client.call_tool("place_order", {"order": {"order_id": "X"}})
        assert bad.is_error and text_of(bad).startswith("Invalid arguments for 'place_order': ")
        assert "items" in text_of(bad)
        iid = instance_id_of(await client.call_tool("place_order", {"order": ORDER}))
        other = await client.call_tool("approve_order_status", {"instance_id": iid})
        assert other.is_error and "'place_order' workflow" in text_of(other)
        waits = await client.call_tool("place_order_result",
                                       {"instance_id": iid, "wait_seconds": 601})
        assert waits.is_error and "wait_seconds" in text_of(waits)
        with pytest.raises(MCPError, match="Unknown tool"):
            await client.call_tool("no_such_tool", {})


async def test_a_failing_workflow_is_a_tool_error(sqlite_url: str) -> None:
    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        started = await client.call_tool("failing_order", {"order_id": "D-1"})
        assert started.is_error
        iid = started.structured_content["instance_id"]
        assert text_of(started) == (f"Workflow 'failing_order' failed.\nInstance ID: {iid}\n"
                                    "Error: TerminalError: card declined")
        result = await client.call_tool("failing_order_result", {"instance_id": iid})
    assert result.is_error
    assert text_of(result) == ("Workflow failed. Current status: failed\n"
                               f"Error: TerminalError: card declined\nInstance ID: {iid}")
    assert result.structured_content["error"] == {"error_type": "TerminalError",
                                                  "error_message": "card declined"}


# -- prompts -------------------------------------------------------------------------------

async def test_prompts_are_listed_and_rendered(sqlite_url: str) -> None:
    async with mcp_http(mcp_service.build(sqlite_url)) as (client, _):
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        summary = await client.get_prompt("order_summary", {"order_id": "E-1", "detail": "3"})
        review = await client.get_prompt("review", {"order_id": "E-2"})
        with pytest.raises(MCPError, match="order_id"):
            await client.get_prompt("order_summary", {})
        with pytest.raises(MCPError, match="detail"):
            await client.get_prompt("order_summary", {"order_id": "E-1", "detail": "lots"})
    assert set(prompts) == {"order_summary", "review"}
    assert prompts["order_summary"].description == "Summarise an order."
    assert [(a.name, a.required) for a in prompts["order_summary"].arguments or []] == \
        [("order_id", True), ("detail", False)]
    assert prompts["review"].description == "Review an order with the assistant"
    assert [(m.role, m.content.text) for m in summary.messages] == \
        [("user", "Summarise order E-1 at detail level 3.")]
    assert [(m.role, m.content.text) for m in review.messages] == \
        [("user", "Please review order E-2."), ("assistant", "I will check its status first.")]


# -- one node: MCP, CloudEvents and the JSON API; tokens -------------------------------

async def test_one_node_serves_mcp_cancel_cloudevents_and_the_json_api(
        make_app: MakeApp, sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    async with mcp_http(mcp_service.build(app)) as (client, base):
        iid = instance_id_of(await client.call_tool("approve_order", {"order_id": "F-1"}))
        async with httpx.AsyncClient(base_url=base) as http:
            health = await http.get("/health")
            listed = await http.get(f"/api/instances/{iid}")
            cancel = await http.post(f"/cancel/{iid}")
    assert health.status_code == 200 and health.json()["node"] == app.worker_id
    assert listed.status_code == 200 and listed.json()["workflow_name"] == "approve_order"
    assert cancel.status_code == 200 and cancel.json() == {"status": "cancelled",
                                                           "instance_id": iid}


async def _posts(base: str, headers: dict[str, str]) -> dict[str, int]:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}
    async with httpx.AsyncClient(base_url=base) as http:
        mcp = await http.post("/mcp", json=initialize, headers={
            **headers, "accept": "application/json, text/event-stream"})
        cancel = await http.post("/cancel/nope", headers=headers)
        health = await http.get("/health")
    return {"mcp": mcp.status_code, "cancel": cancel.status_code, "health": health.status_code}


async def test_a_token_verifier_refuses_missing_and_wrong_tokens(sqlite_url: str) -> None:
    seen: list[str] = []

    def verify(token: str) -> bool:
        seen.append(token)
        return token == "s3cret"

    server = mcp_service.build(sqlite_url, token_verifier=verify)
    async with mcp_http(server, token="s3cret") as (client, base):
        assert len((await client.list_tools()).tools) == 12
        assert await _posts(base, {}) == {"mcp": 401, "cancel": 401, "health": 200}
        wrong = {"authorization": "Bearer guess"}
        assert await _posts(base, wrong) == {"mcp": 401, "cancel": 401, "health": 200}
        async with httpx.AsyncClient() as http:
            refused = await http.post(f"{base}/mcp", json={}, headers=wrong)
        assert refused.json()["error_type"] == "Unauthorized"
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert (await _posts(base, {"authorization": "Bearer s3cret"}))["cancel"] == 400
    assert "guess" in seen and "s3cret" in seen


async def test_sdk_token_verifiers_and_the_apps_authorize_hook(
        make_app: MakeApp, sqlite_url: str) -> None:
    class Verifier:
        async def verify_token(self, token: str) -> AccessToken | None:
            if token != "sdk-token":
                return None
            return AccessToken(token=token, client_id="tests", scopes=[])

    async with mcp_http(mcp_service.build(sqlite_url, token_verifier=Verifier()),
                        token="sdk-token") as (client, base):
        assert len((await client.list_tools()).tools) == 12
        assert await _posts(base, {"authorization": "Bearer other"}) == \
            {"mcp": 401, "cancel": 401, "health": 200}
    app = make_app(sqlite_url, authorize=bearer_token("app-token"))
    both = mcp_service.build(app, token_verifier=Verifier())
    async with serve(both.asgi_app(), lifespan="on") as base:   # each check must pass
        assert (await _posts(base, {"authorization": "Bearer sdk-token"}))["mcp"] == 401
        assert (await _posts(base, {"authorization": "Bearer app-token"}))["mcp"] == 401
    only_app = mcp_service.build(app)
    async with mcp_http(only_app, token="app-token") as (client, base):
        assert len((await client.list_tools()).tools) == 12
        assert await _posts(base, {"authorization": "Bearer other"}) == \
            {"mcp": 401, "cancel": 401, "health": 200}


async def test_the_server_refuses_unclear_settings(make_app: MakeApp, sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    with pytest.raises(ValueError, match="not both"):
        EddaMCPServer("x", sqlite_url, app=app)
    with pytest.raises(ValueError, match="database URL or an EddaApp"):
        EddaMCPServer("x")
    with pytest.raises(ValueError, match="give them to EddaApp"):
        EddaMCPServer("x", app, outbox_enabled=True, broker_url="http://b")
    with pytest.raises(TypeError, match="token_verifier"):
        EddaMCPServer("x", sqlite_url, token_verifier=42)
    server = EddaMCPServer("x", app)
    server.durable_tool(mcp_service.approve_order)
    with pytest.raises(ValueError, match="taken"):
        server.durable_tool(mcp_service.approve_order)
    assert server.app is app


async def test_without_lifespan_mcp_says_how_to_serve_it(sqlite_url: str) -> None:
    server = mcp_service.build(sqlite_url)
    try:
        async with serve(server.asgi_app()) as base, httpx.AsyncClient(base_url=base) as http:
            mcp = await http.post("/mcp", json={})
            health = await http.get("/health")     # the app initializes itself on first use
    finally:
        await server.shutdown()
    assert mcp.status_code == 503 and "lifespan" in mcp.json()["error"]
    assert health.status_code == 200


async def test_tools_before_initialize_say_so(sqlite_url: str) -> None:
    server = mcp_service.build(sqlite_url)
    async with Client(server.mcp_server) as client:
        answer = await client.call_tool("approve_order_status", {"instance_id": "x"})
    assert answer.is_error
    assert text_of(answer) == "Server not initialized. Call server.initialize() first."


# -- stdio, and a SIGKILL -----------------------------------------------------------------

async def test_over_stdio(sqlite_url: str) -> None:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "tests.support.mcp_service", "stdio", sqlite_url],
                                   cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    async with Client(params) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "approve_order_result" in tools
        iid = instance_id_of(await client.call_tool("place_order", {"order": ORDER}))
        result = await client.call_tool("place_order_result", {"instance_id": iid})
        summary = await client.get_prompt("order_summary", {"order_id": "G-1"})
    assert result.structured_content["result"]["total"] == 7.0
    assert summary.messages[0].content.text == "Summarise order G-1 at detail level 1."


class _Child:
    """The order service's HTTP server in a child process."""

    def __init__(self, db_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.mcp_service", "http", db_url], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        out = self.process.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
        try:
            ready = lines.get(timeout=60)
        except queue.Empty:
            self.kill()
            raise AssertionError("the MCP server process did not start within 60 s") from None
        assert ready.startswith("ready "), ready
        self.base = ready.split()[1]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


async def test_a_tool_started_workflow_survives_sigkill_of_the_server(sqlite_url: str) -> None:
    first = await anyio.to_thread.run_sync(_Child, sqlite_url)
    try:
        async with Client(f"{first.base}/mcp") as client:
            iid = instance_id_of(await client.call_tool("approve_order", {"order_id": "H-1"}))
    finally:
        first.kill()
    assert first.process.returncode == -signal.SIGKILL
    second = await anyio.to_thread.run_sync(_Child, sqlite_url)
    try:
        await post_event(second.base, "approval.H-1", {"approver": "bo"})
        async with Client(f"{second.base}/mcp") as client:
            result = await client.call_tool("approve_order_result",
                                            {"instance_id": iid, "wait_seconds": 30})
            status = await client.call_tool("approve_order_status", {"instance_id": iid})
    finally:
        second.kill()
    assert not result.is_error, text_of(result)
    assert result.structured_content["result"] == {"order_id": "H-1",
                                                   "shipped": "H-1 shipped, approved by bo"}
    assert status.structured_content["completed_activities"] == 2
    assert json.loads(json.dumps(result.structured_content))["status"] == "completed"


EXAMPLE = ROOT / "examples" / "mcp_order_service.py"


def test_the_example_runs_its_three_orders(tmp_path: Path) -> None:
    env = {**os.environ, "EDDA_DEMO_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLE)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "A-1 started -> completed" in out
    assert "    progress 1: reserve_stock:1 completed" in out
    assert "    progress 3: ship:1 completed" in out
    assert "B-2 result: {'order_id': 'B-2', 'total': 1299.0, 'approved_by': 'maria'" in out
    assert "compensation: stock of C-3 released" in out and "C-3 cancel -> cancelled" in out
    assert done.stderr == "", "the example runs without warnings"
