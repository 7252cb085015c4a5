"""An order service as an MCP server, for tests/test_mcp.py: in process or as a child.

`build` makes the server (on a database URL or an app) with three durable tools
and two prompts. As a script, ``python -m tests.support.mcp_service MODE DB_URL``:

* ``stdio``: serve MCP over stdin and stdout;
* ``http``: serve the ASGI app with uvicorn on a free port of 127.0.0.1, print
  ``ready <base url>`` and serve until killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pydantic import BaseModel

from edda import (
    EddaApp,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    wait_event,
)
from edda.integrations.mcp import EddaMCPServer

#: Order ids whose stock was released by the compensation, in order (in this process).
RELEASED: list[str] = []


class Item(BaseModel):
    sku: str
    quantity: int
    price: float


class Order(BaseModel):
    order_id: str
    items: list[Item]


@compensation
async def release_stock(ctx: WorkflowContext, order_id: str) -> None:
    RELEASED.append(order_id)


@activity
@on_failure(release_stock)
async def reserve_stock(ctx: WorkflowContext, order_id: str) -> None:
    return None


@activity
async def charge(ctx: WorkflowContext, order_id: str, amount: float) -> str:
    if amount < 0:
        raise TerminalError("card declined")
    return f"charged {amount:.2f}"


@activity
async def ship(ctx: WorkflowContext, order_id: str, approver: str) -> str:
    return f"{order_id} shipped, approved by {approver}"


async def place_order(ctx: WorkflowContext, order: Order, express: bool = False) -> dict[str, Any]:
    """Place an order: reserve its stock and charge for it."""
    total = sum(item.quantity * item.price for item in order.items)
    await reserve_stock(ctx, order.order_id)
    receipt = await charge(ctx, order.order_id, total)
    return {"order_id": order.order_id, "total": total, "receipt": receipt, "express": express}


async def approve_order(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    await reserve_stock(ctx, order_id)
    approval = await wait_event(ctx, f"approval.{order_id}")
    shipped = await ship(ctx, order_id, approval.data["approver"])
    return {"order_id": order_id, "shipped": shipped}


async def failing_order(ctx: WorkflowContext, order_id: str) -> str:
    await reserve_stock(ctx, order_id)
    return await charge(ctx, order_id, -1.0)


def order_summary(order_id: str, detail: int = 1) -> str:
    """Summarise an order."""
    return f"Summarise order {order_id} at detail level {detail}."


def build(target: str | EddaApp, token_verifier: Any = None) -> EddaMCPServer:
    """The order service on a database URL or an app."""
    if isinstance(target, EddaApp):
        server = EddaMCPServer("orders", app=target, token_verifier=token_verifier)
    else:
        server = EddaMCPServer("orders", target, token_verifier=token_verifier)
    server.durable_tool(place_order)
    server.durable_tool(description="Approve an order and ship it once approved")(approve_order)
    server.durable_tool(failing_order)
    server.prompt(order_summary)

    @server.prompt(description="Review an order with the assistant")
    async def review(order_id: str) -> list[Any]:
        from mcp.server.mcpserver.prompts.base import AssistantMessage, UserMessage

        return [UserMessage(f"Please review order {order_id}."),
                AssistantMessage("I will check its status first.")]

    return server


async def _serve_http(db_url: str) -> None:
    import uvicorn

    server = build(EddaApp("orders", db_url, lease_seconds=1.0))
    config = uvicorn.Config(server.asgi_app(), host="127.0.0.1", port=0, lifespan="on",
                            log_level="warning", access_log=False)
    web = uvicorn.Server(config)
    task = asyncio.create_task(web.serve())
    while not web.started:
        if task.done():
            await task
            sys.exit("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = web.servers[0].sockets[0].getsockname()[1]
    print(f"ready http://127.0.0.1:{port}", flush=True)
    await task


if __name__ == "__main__":
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "stdio":
        asyncio.run(build(url).run_stdio())
    else:
        asyncio.run(_serve_http(url))
