"""Edda + MCP demo: an order service whose durable workflows are tools for an AI assistant.

Run the demo with ``.venv/bin/python examples/mcp_order_service.py`` after ``make test``
(or ``pip install '/path/to/edda-actors[mcp]' uvicorn``). It needs no LLM and no network: the
MCP SDK's own client plays the assistant against the server on 127.0.0.1.

1. A small order completes as soon as it is started.
2. A large order waits durably for a manager's approval. The client asks for its
   result, waiting up to 30 s, and sees each step as a progress notification; the
   approval arrives as a CloudEvent on the same server; the result comes back.
3. A third order is cancelled while it waits: its stock reservation is released.

The same module is an MCP server for a real assistant:

    .venv/bin/python examples/mcp_order_service.py --stdio       # MCP over stdio
    .venv/bin/uvicorn mcp_order_service:app --app-dir examples  # HTTP, MCP at /mcp

``EDDA_DB_URL`` chooses the database (a SQLite file in a temporary folder by default)
and ``EDDA_MCP_TOKEN`` the bearer token HTTP clients must send (``demo-token``).
"""

from __future__ import annotations

import asyncio
import atexit
import hmac
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from edda import WorkflowContext, activity, compensation, on_failure, wait_event
from edda.integrations.mcp import EddaMCPServer

WORKDIR = Path(os.environ.get("EDDA_DEMO_DIR") or tempfile.mkdtemp(prefix="edda-mcp-"))
if "EDDA_DEMO_DIR" not in os.environ:  # a folder of its own: removed when the demo ends
    atexit.register(shutil.rmtree, WORKDIR, True)
DB_URL = os.environ.get("EDDA_DB_URL") or f"sqlite:///{WORKDIR / 'orders.db'}"
APPROVAL_LIMIT = 500.0
TOKEN = os.environ.get("EDDA_MCP_TOKEN", "demo-token")

server = EddaMCPServer("order-service", DB_URL,
                       token_verifier=lambda token: hmac.compare_digest(token, TOKEN))


class OrderItem(BaseModel):
    sku: str
    quantity: int
    unit_price: float


@compensation
async def release_stock(ctx: WorkflowContext, order_id: str) -> None:
    print(f"    compensation: stock of {order_id} released", flush=True)


@activity
@on_failure(release_stock)
async def reserve_stock(ctx: WorkflowContext, order_id: str) -> str:
    return f"reservation-{order_id}"


@activity
async def charge(ctx: WorkflowContext, order_id: str, amount: float) -> str:
    return f"payment-{order_id}"


@activity
async def ship(ctx: WorkflowContext, order_id: str) -> str:
    return f"parcel-{order_id}"


@server.durable_tool(description="Process a customer order: reserve the stock, wait for a "
                                 "manager's approval if it is large, charge it and ship it.")
async def process_order(ctx: WorkflowContext, order_id: str,
                        items: list[OrderItem]) -> dict[str, Any]:
    total = sum(item.quantity * item.unit_price for item in items)
    await reserve_stock(ctx, order_id)
    approved_by = "policy"
    if total > APPROVAL_LIMIT:
        approval = await wait_event(ctx, f"order.approved.{order_id}")
        approved_by = approval.data["manager"]
    payment = await charge(ctx, order_id, total)
    parcel = await ship(ctx, order_id)
    return {"order_id": order_id, "total": total, "approved_by": approved_by,
            "payment": payment, "parcel": parcel}


@server.prompt(description="Help a customer with an order")
def order_help(order_id: str) -> str:
    return (f"The customer asks about order {order_id}. Use process_order_status and "
            "process_order_result (with wait_seconds) to answer.")


#: The ASGI application: MCP at /mcp, CloudEvents and the JSON API beside it.
app = server.asgi_app()


async def demo() -> None:
    import httpx2
    import uvicorn
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    # A socket bound here: its port is known at once, and connections wait in its
    # backlog until uvicorn has run the app's startup and accepts them.
    listening = socket.create_server(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listening.getsockname()[1]}"
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    serving = asyncio.create_task(web.serve(sockets=[listening]))
    print(f"MCP server at {base}/mcp (database {DB_URL})")
    signed = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    async with signed, Client(streamable_http_client(f"{base}/mcp", http_client=signed)) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        print(f"tools: {', '.join(tools)}")

        small = await client.call_tool("process_order", {
            "order_id": "A-1", "items": [{"sku": "pen", "quantity": 3, "unit_price": 2.5}]})
        a1 = small.structured_content["instance_id"]
        print(f"A-1 started -> {small.structured_content['status']}")
        result = await client.call_tool("process_order_result", {"instance_id": a1})
        print(f"A-1 result: {result.structured_content['result']}")

        large = {"order_id": "B-2", "items": [{"sku": "laptop", "quantity": 1,
                                               "unit_price": 1299.0}]}
        b2 = (await client.call_tool("process_order", large)).structured_content["instance_id"]
        status = await client.call_tool("process_order_status", {"instance_id": b2})
        print(f"B-2 is {status.structured_content['status']}; asking for its result "
              "(waiting up to 30 s)")
        first_step = asyncio.Event()

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"    progress {done:.0f}: {message}", flush=True)
            first_step.set()

        waiting = asyncio.create_task(client.call_tool(
            "process_order_result", {"instance_id": b2, "wait_seconds": 30},
            progress_callback=progress))
        await first_step.wait()
        async with httpx.AsyncClient() as http:      # the approval, as a CloudEvent
            await http.post(f"{base}/", json={
                "specversion": "1.0", "id": "approval-B-2", "source": "manager-app",
                "type": "order.approved.B-2", "data": {"manager": "maria"}},
                headers={"content-type": "application/cloudevents+json"})
        print("manager maria approved B-2")
        result = await waiting
        print(f"B-2 result: {result.structured_content['result']}")

        c3 = (await client.call_tool("process_order", {**large, "order_id": "C-3"}))
        c3_id = c3.structured_content["instance_id"]
        cancelled = await client.call_tool("process_order_cancel", {"instance_id": c3_id})
        print(f"C-3 cancel -> {cancelled.structured_content['status']}")
    web.should_exit = True
    await serving


if __name__ == "__main__":
    if "--stdio" in sys.argv[1:]:
        asyncio.run(server.run_stdio())
    else:
        asyncio.run(demo())
