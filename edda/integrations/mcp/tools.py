"""The four MCP tools of a durable tool ``N``: ``N``, ``N_status``, ``N_result``, ``N_cancel``.

Names, descriptions and answer texts are Edda's, so prompts written for Edda keep
working. Beyond Edda, every answer about an instance also comes as structured
content (see `edda.integrations.mcp.schemas`), an answer that reports a failure
sets the protocol's ``isError``, ``N_result`` can wait for the end instead of
making the assistant poll, and calls that wait report the workflow's completed
steps as progress when the client asks for it.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import mcp_types as types
import pydantic

from edda.integrations.mcp import schemas
from edda.integrations.mcp.progress import with_progress
from edda.journal.errors import DatabaseUnavailableError
from edda.journal.faults import is_transient
from edda.runtime.limits import check_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcp.server.context import ServerRequestContext

    from edda.runtime.app import EddaApp
    from edda.runtime.workflow import Workflow

log = logging.getLogger("edda.mcp")

#: How long ``N_cancel`` waits for the cancelled instance's compensations to run.
CANCEL_WAIT_SECONDS = 10.0
_ENDED = ("completed", "failed", "cancelled")
NOT_INITIALIZED = "Server not initialized. Call server.initialize() first."


class _InstanceArgs(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    instance_id: str = pydantic.Field(min_length=1, max_length=255)


class _ResultArgs(_InstanceArgs):
    wait_seconds: float = pydantic.Field(0.0, ge=0, le=schemas.MAX_WAIT_SECONDS)


_ArgsT = TypeVar("_ArgsT", bound=_InstanceArgs)


class _Refused(Exception):
    """A call that is answered with an error text (and no structured content)."""


def answer(text: str, structured: dict[str, Any] | None = None, *,
           error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)],
                                structured_content=structured, is_error=error)


def _invalid(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                         for e in exc.errors()[:5])
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _trouble(exc: Exception, doing: str) -> str:
    """The text for a call that failed on this side: nothing of the failure itself
    (no SQL or stored data), which the log has under an error id."""
    if isinstance(exc, DatabaseUnavailableError) or is_transient(exc):
        return f"Error {doing}: the database is unavailable; try again shortly"
    error_id = uuid.uuid4().hex[:12]
    log.error("MCP tool call failed while %s (error id %s)", doing, error_id, exc_info=exc)
    return f"Error {doing}: internal error; the server's log has it under error id {error_id}"


class DurableTool:
    """A workflow served as four MCP tools."""

    def __init__(self, wf: Workflow[..., Any], description: str,
                 app: Callable[[], EddaApp]) -> None:
        self.workflow = wf
        self.name = wf.name
        self.description = (description or inspect.cleandoc(wf.func.__doc__ or "")
                            or f"Start {self.name} workflow")
        self._app = app
        self._handlers = {
            self.name: self._start,
            f"{self.name}_status": self._status,
            f"{self.name}_result": self._result,
            f"{self.name}_cancel": self._cancel,
        }

    @property
    def tool_names(self) -> list[str]:
        return list(self._handlers)

    def definitions(self) -> list[types.Tool]:
        """The four tools as ``tools/list`` describes them."""
        n = self.name
        looks = types.ToolAnnotations(read_only_hint=True)
        return [
            types.Tool(name=n, description=self.description,
                       input_schema=self.workflow.input_schema(),
                       output_schema=schemas.start_output()),
            types.Tool(name=f"{n}_status", description=f"Check status of {n} workflow",
                       input_schema=schemas.instance_input(),
                       output_schema=schemas.status_output(), annotations=looks),
            types.Tool(name=f"{n}_result", description=f"Get result of {n} workflow (if completed)",
                       input_schema=schemas.result_input(),
                       output_schema=schemas.result_output(), annotations=looks),
            types.Tool(name=f"{n}_cancel",
                       description=f"Cancel {n} workflow (if running or waiting)",
                       input_schema=schemas.instance_input(),
                       output_schema=schemas.cancel_output(),
                       annotations=types.ToolAnnotations(destructive_hint=True)),
        ]

    async def call(self, tool: str, ctx: ServerRequestContext[Any, Any],
                   arguments: dict[str, Any]) -> types.CallToolResult:
        """Answer a call of one of the four tools (``tool`` is one of `tool_names`)."""
        app = self._app()
        if not app._initialized:
            return answer(NOT_INITIALIZED, error=True)
        doing = {self.name: "starting workflow", f"{self.name}_status": "checking status",
                 f"{self.name}_result": "getting result",
                 f"{self.name}_cancel": "cancelling workflow"}[tool]
        try:
            return await self._handlers[tool](app, ctx, arguments)
        except _Refused as refused:
            return answer(str(refused), error=True)
        except Exception as exc:
            return answer(_trouble(exc, doing), error=True)

    # -- the four tools ----------------------------------------------------------------

    async def _start(self, app: EddaApp, ctx: ServerRequestContext[Any, Any],
                     arguments: dict[str, Any]) -> types.CallToolResult:
        wf, n = self.workflow, self.name
        kwargs = {k: v for k, v in arguments.items() if k != "ctx"}
        try:
            wf.prepare_input(dict(kwargs))
        except (TypeError, ValueError) as exc:  # pydantic.ValidationError is a ValueError
            raise _Refused(f"Invalid arguments for '{n}': {_invalid(exc)}") from None
        # The id is chosen here so that a workflow that fails before it first waits
        # can still be named in the answer.
        chosen = None if wf.takes("instance_id") else app._placement().new_id(n)[0]
        if chosen is not None:
            kwargs["instance_id"] = chosen

        async def start() -> str:
            return await app.start_workflow(wf, **kwargs)

        try:
            instance_id = (await start() if chosen is None
                           else await with_progress(app, ctx, chosen, start))
        except Exception as exc:
            inst = None if chosen is None else await app.get_instance(chosen)
            if inst is None or inst["status"] not in (*_ENDED, "compensating"):
                raise  # not the workflow's failure (the node stopped, say)
            ended = "cancelled" if inst["status"] == "cancelled" else "failed"
            return answer(f"Workflow '{n}' {ended}.\nInstance ID: {chosen}\n"
                          f"Error: {type(exc).__name__}: {exc}",
                          {"instance_id": chosen, "workflow_name": n, "status": inst["status"]},
                          error=True)
        inst = await app.get_instance(instance_id)
        status = inst["status"] if inst is not None else "running"
        return answer(
            f"Workflow '{n}' started successfully.\nInstance ID: {instance_id}\n\n"
            f"Use '{n}_status' tool with instance_id='{instance_id}' to check progress.\n"
            f"Use '{n}_result' tool to get the final result once completed.",
            {"instance_id": instance_id, "workflow_name": n, "status": status})

    async def _status(self, app: EddaApp, ctx: ServerRequestContext[Any, Any],
                      arguments: dict[str, Any]) -> types.CallToolResult:
        args = self._args(_InstanceArgs, arguments)
        inst = await self._instance(app, args.instance_id)
        history = await app.get_history(args.instance_id)
        completed = sum(1 for h in history if h["event_type"] == "ActivityCompleted")
        status = inst["status"]
        poll_ms = 5000 if status == "running" else 10000
        return answer(
            f"Workflow Status: {status}\nCurrent Activity: {inst['current_activity_id']}\n"
            f"Completed Activities: {completed}\nSuggested Poll Interval: {poll_ms}ms\n"
            f"Instance ID: {args.instance_id}",
            {"instance_id": args.instance_id, "workflow_name": self.name, "status": status,
             "current_activity_id": inst["current_activity_id"],
             "completed_activities": completed, "suggested_poll_interval_ms": poll_ms})

    async def _result(self, app: EddaApp, ctx: ServerRequestContext[Any, Any],
                      arguments: dict[str, Any]) -> types.CallToolResult:
        args = self._args(_ResultArgs, arguments)
        instance_id = args.instance_id
        inst = await self._instance(app, instance_id)
        if args.wait_seconds > 0 and inst["status"] not in _ENDED:
            async def wait() -> None:
                try:
                    await app.wait_result(instance_id, timeout=args.wait_seconds)
                except TimeoutError:
                    pass
                except Exception:  # it failed or was cancelled: its row says how
                    pass

            await with_progress(app, ctx, instance_id, wait)
        inst = await self._newest(app, await self._instance(app, instance_id))
        instance_id, status = inst["instance_id"], inst["status"]
        output = inst["output_data"] or {}
        facts: dict[str, Any] = {"instance_id": instance_id, "workflow_name": self.name,
                                 "status": status, "finished": status in _ENDED}
        if status == "completed":
            return answer(f"Workflow Result:\n{output!r}",
                          {**facts, "result": output.get("result")})
        if status == "failed":
            error = {"error_type": str(output.get("error_type", "Exception")),
                     "error_message": str(output.get("error_message", ""))}
            return answer(f"Workflow failed. Current status: failed\n"
                          f"Error: {error['error_type']}: {error['error_message']}\n"
                          f"Instance ID: {instance_id}", {**facts, "error": error}, error=True)
        if status == "cancelled":
            error = {"error_type": "WorkflowCancelledException",
                     "error_message": f"cancelled by {output.get('cancelled_by', 'unknown')}"}
            return answer(f"Workflow cancelled. Current status: cancelled\n"
                          f"Instance ID: {instance_id}", {**facts, "error": error}, error=True)
        return answer(f"Workflow not completed yet. Current status: {status}", facts)

    async def _cancel(self, app: EddaApp, ctx: ServerRequestContext[Any, Any],
                      arguments: dict[str, Any]) -> types.CallToolResult:
        args = self._args(_InstanceArgs, arguments)
        instance_id, n = args.instance_id, self.name
        await self._instance(app, instance_id)
        accepted = await app.cancel_workflow(instance_id, cancelled_by="mcp_user")
        if accepted:
            try:  # the compensations run after the cancel is committed: let them finish
                await app.wait_result(instance_id, timeout=CANCEL_WAIT_SECONDS)
            except Exception:  # cancelled (as asked), failed, or still compensating
                pass
        inst = await self._instance(app, instance_id)
        status = inst["status"]
        facts = {"instance_id": instance_id, "workflow_name": n, "status": status,
                 "cancelled": status == "cancelled"}
        if not accepted:
            return answer(f"Cannot cancel workflow: {instance_id}\nCurrent status: {status}\n"
                          "Only running or waiting workflows can be cancelled.", facts, error=True)
        if status == "cancelled":
            return answer(f"Workflow '{n}' cancelled successfully.\nInstance ID: {instance_id}\n"
                          "Compensations executed.\n\nThe workflow has been stopped and any side "
                          "effects have been rolled back.", facts)
        return answer(f"Workflow '{n}' is being cancelled.\nInstance ID: {instance_id}\n"
                      f"Current status: {status}\n\nIts running step finishes first, then its "
                      f"compensations run. Use '{n}_status' tool to follow it.", facts)

    # -- shared ------------------------------------------------------------------------

    def _args(self, model: type[_ArgsT], arguments: dict[str, Any]) -> _ArgsT:
        try:
            return model.model_validate(arguments)
        except pydantic.ValidationError as exc:
            raise _Refused(f"Invalid arguments: {_invalid(exc)}") from None

    async def _instance(self, app: EddaApp, instance_id: str) -> dict[str, Any]:
        try:
            check_key(instance_id, "instance_id")
        except ValueError as exc:
            raise _Refused(f"Invalid instance_id: {_invalid(exc)}") from None
        inst = await app.get_instance(instance_id)
        if inst is None:
            raise _Refused(f"Workflow instance not found: {instance_id}")
        if inst["workflow_name"] != self.name:
            other = inst["workflow_name"]
            raise _Refused(f"Workflow instance {instance_id} is a '{other}' workflow, not "
                           f"'{self.name}'; use the '{other}_...' tools for it.")
        return inst

    async def _newest(self, app: EddaApp, inst: dict[str, Any]) -> dict[str, Any]:
        """The instance a recurring one continued as, followed to the newest."""
        for _ in range(1000):
            if inst["status"] != "recurred":
                return inst
            history = await app.get_history(inst["instance_id"])
            new_id = history[-1]["event_data"].get("new_instance_id") if history else None
            if not new_id:
                return inst
            inst = await self._instance(app, str(new_id))
        return inst

