"""Durable workflows as AI tools over the Model Context Protocol (MCP).

Install with ``pip install 'edda-actors[mcp]'``::

    server = EddaMCPServer("orders", "sqlite:///orders.db")

    @server.durable_tool(description="Process an order")
    async def process_order(ctx: WorkflowContext, order_id: str) -> dict:
        ...

    app = server.asgi_app()          # uvicorn module:app  ->  MCP at /mcp

Each durable tool ``N`` is four MCP tools: ``N`` starts an instance, ``N_status``,
``N_result`` (optionally waiting for the end) and ``N_cancel``. See docs/mcp.md.
"""

from edda._extras import install_hint as _install_hint

try:
    import mcp_types as _mcp_types  # noqa: F401  (the 2.x SDK)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "edda.integrations.mcp needs the MCP SDK 2.3 or later: " + _install_hint('mcp')
    ) from exc

from edda.integrations.mcp.server import EddaMCPServer

__all__ = ["EddaMCPServer"]

EddaMCPServer.__module__ = __name__
