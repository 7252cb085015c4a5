"""`EddaMCPServer`: durable workflows as MCP tools, over streamable HTTP or stdio.

It is built on the MCP SDK's low-level ``Server``, so that every tool's schemas,
errors and progress are exactly what this integration says (the SDK's
``MCPServer`` derives them from function signatures, which a workflow's four
tools do not have). The server runs on an `EddaApp`: its own, made from a
database URL, or one the caller already has, so that one node serves CloudEvents,
the JSON API and MCP together.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, TypeVar, overload

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from edda.integrations.mcp.auth import BearerCheck, TokenVerifierLike
from edda.integrations.mcp.http import MCPAsgiApp
from edda.integrations.mcp.prompts import PromptEntry
from edda.integrations.mcp.tools import DurableTool
from edda.runtime.app import EddaApp
from edda.runtime.workflow import Workflow, workflow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcp.server.context import ServerRequestContext

C = TypeVar("C", bound="Callable[..., Any]")


class EddaMCPServer:
    """An MCP server whose tools start, follow and cancel durable workflows.

    Args:
        name: The server's name (and the service name of the app it builds).
        db_url: The database of the app to build, or an `EddaApp` to run on.
        outbox_enabled: Run the transactional outbox relayer (the built app's setting).
        broker_url: Where the relayer sends events (the built app's setting).
        token_verifier: Checks bearer tokens: a function of the token (sync or
            async) answering whether it is accepted, or an object with an async
            ``verify_token(token)`` that returns None for a refused token (the MCP
            SDK's ``TokenVerifier``). With it, a request without a token, or with
            a refused one, gets 401.
        app: An `EddaApp` to run on, instead of ``db_url``.

    Raises:
        ValueError: Without a database URL or app, or with both; or with outbox
            settings next to an app (give them to the app).
        TypeError: For a token verifier that is neither kind.
    """

    def __init__(self, name: str, db_url: str | EddaApp | None = None, *,
                 outbox_enabled: bool = False, broker_url: str | None = None,
                 token_verifier: TokenVerifierLike | None = None,
                 app: EddaApp | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        if isinstance(db_url, EddaApp):
            if app is not None:
                raise ValueError("give either a database URL or an EddaApp, not both")
            db_url, app = None, db_url
        self._token = None if token_verifier is None else BearerCheck(token_verifier)
        if app is not None:
            if db_url is not None:
                raise ValueError("give either a database URL or an EddaApp, not both")
            if not isinstance(app, EddaApp):
                raise TypeError(f"app must be an EddaApp, got {app!r}")
            if outbox_enabled or broker_url is not None:
                raise ValueError("outbox_enabled and broker_url are settings of the EddaApp; "
                                 "give them to EddaApp(...) instead")
            self._app, self._app_given = app, True
        elif isinstance(db_url, str):
            self._app = EddaApp(name, db_url, outbox_enabled=outbox_enabled, broker_url=broker_url,
                                authorize=None if self._token is None else self._token.allows)
            self._app_given = False
        else:
            raise ValueError("EddaMCPServer needs a database URL or an EddaApp "
                             "(EddaMCPServer(name, 'sqlite:///app.db') or (name, app=app))")
        self.name = name
        self._tools: dict[str, DurableTool] = {}
        self._by_tool_name: dict[str, DurableTool] = {}
        self._prompts: dict[str, PromptEntry] = {}
        #: The MCP SDK's low-level server (to add handlers of your own).
        self.mcp_server: Server[Any] = Server(
            name, on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_prompts=self._list_prompts, on_get_prompt=self._get_prompt,
            get_tool_input_schema=self._input_schema)

    @property
    def app(self) -> EddaApp:
        """The `EddaApp` the workflows run on."""
        return self._app

    # -- lifecycle -------------------------------------------------------------------

    async def initialize(self) -> None:
        """Initialize the app (idempotent). The ASGI lifespan and `run_stdio` do it too.

        Raises:
            ServiceStartError: If the app cannot start.
        """
        await self._app.initialize()

    async def shutdown(self) -> None:
        """Shut the app down; its waiting instances resume when an app starts again."""
        await self._app.shutdown()

    # -- registration ----------------------------------------------------------------

    @overload
    def durable_tool(self, func: Callable[..., Awaitable[Any]], /, *,
                     description: str = "") -> Workflow[..., Any]: ...

    @overload
    def durable_tool(self, func: None = None, /, *, description: str = ""
                     ) -> Callable[[Callable[..., Awaitable[Any]]], Workflow[..., Any]]: ...

    def durable_tool(self, func: Callable[..., Awaitable[Any]] | None = None, /, *,
                     description: str = ""
                     ) -> Workflow[..., Any] | Callable[[Callable[..., Awaitable[Any]]],
                                                        Workflow[..., Any]]:
        """Make an async ``(ctx, ...)`` function a workflow served as four MCP tools:
        ``N`` (start), ``N_status``, ``N_result`` and ``N_cancel``.

        ``@server.durable_tool`` or ``@server.durable_tool(description="...")``; a
        function already decorated with ``@workflow`` is taken as it is.

        Returns:
            The `Workflow` (``await wf.start(...)`` works as for any workflow).

        Raises:
            TypeError: If the function is not ``async def`` or takes no context.
            ValueError: If one of the four tool names is taken.
        """
        if func is None:
            return lambda f: self.durable_tool(f, description=description)
        wf = func if isinstance(func, Workflow) else workflow(func)
        tool = DurableTool(wf, description, lambda: self._app)
        taken = [n for n in tool.tool_names if n in self._by_tool_name]
        if taken:
            raise ValueError(f"durable tool {wf.name!r} needs the tool names "
                             f"{', '.join(map(repr, taken))}, which are taken")
        # The app runs it even if it was given an explicit list of workflows.
        self._app.registry.add_workflow(wf)
        self._tools[wf.name] = tool
        for tool_name in tool.tool_names:
            self._by_tool_name[tool_name] = tool
        return wf

    @overload
    def prompt(self, func: C, /, *, name: str | None = None, description: str = "") -> C: ...

    @overload
    def prompt(self, func: None = None, /, *, name: str | None = None,
               description: str = "") -> Callable[[C], C]: ...

    def prompt(self, func: C | None = None, /, *, name: str | None = None,
               description: str = "") -> C | Callable[[C], C]:
        """Register a prompt: a function (sync or async) of the prompt's arguments
        that returns its messages (see `edda.integrations.mcp.prompts`).

        ``@server.prompt`` or ``@server.prompt(description="...")``. The description
        falls back to the docstring, then to ``"Prompt: {name}"``. The function is
        returned unchanged.

        Raises:
            ValueError: If a prompt of that name is registered.
        """
        if func is None:
            def register(f: C) -> C:
                return self.prompt(f, name=name, description=description)
            return register
        prompt_name = name or func.__name__
        if prompt_name in self._prompts:
            raise ValueError(f"a prompt named {prompt_name!r} is registered")
        text = (description or inspect.cleandoc(getattr(func, "__doc__", None) or "")
                or f"Prompt: {prompt_name}")
        self._prompts[prompt_name] = PromptEntry(func, prompt_name, text)
        return func

    # -- serving -----------------------------------------------------------------------

    def asgi_app(self) -> MCPAsgiApp:
        """An ASGI application: MCP (streamable HTTP) at ``/mcp``, Edda's
        ``POST /cancel/{instance_id}``, and every other route of the `EddaApp`
        (CloudEvents, ``/health``, ``/api/...``). See docs/mcp.md.

        Serve it with lifespan events on: the lifespan initializes the server and
        runs the MCP transport. Each call makes a new application.
        """
        return MCPAsgiApp(self, token=self._token, app_given=self._app_given)

    async def run_stdio(self) -> None:
        """Serve MCP over this process's stdin and stdout until the client closes them.

        Initializes the server first if needed (and then shuts it down at the end).
        Log to stderr only: stdout carries the protocol.
        """
        started_here = not self._app._initialized
        await self.initialize()
        try:
            async with stdio_server() as (read_stream, write_stream):
                await self.mcp_server.run(read_stream, write_stream,
                                          self.mcp_server.create_initialization_options())
        finally:
            if started_here:
                await self.shutdown()

    # -- MCP handlers -------------------------------------------------------------------

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[t for tool in self._tools.values() for t in tool.definitions()])

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._by_tool_name.get(name)
        if tool is None:
            return None
        return next(t.input_schema for t in tool.definitions() if t.name == name)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = self._by_tool_name.get(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        return await tool.call(params.name, ctx, dict(params.arguments or {}))

    async def _list_prompts(self, ctx: ServerRequestContext[Any, Any],
                            params: types.PaginatedRequestParams | None
                            ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[p.definition() for p in self._prompts.values()])

    async def _get_prompt(self, ctx: ServerRequestContext[Any, Any],
                          params: types.GetPromptRequestParams) -> types.GetPromptResult:
        entry = self._prompts.get(params.name)
        if entry is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        return await entry.render(params.arguments)

