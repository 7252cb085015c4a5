"""MCP progress notifications for a tool call that waits on a workflow.

When the client sends a progress token with a call that waits (the start tool
while the workflow runs up to its first wait, the result tool while it waits for
the end), the instance's journal is read every `POLL_SECONDS` and each newly
completed activity is reported, numbered from 1, with its step id as the message
(``"reserve:1 completed"``). Reading the journal is the one way to follow an
instance wherever it runs (this node or another); it costs nothing when the
client asked for no progress. Before the call answers, the journal is read once
more, so every step completed by then has been reported.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mcp.server.context import ServerRequestContext

    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.mcp")
T = TypeVar("T")

#: How often a waiting call reads the journal for progress.
POLL_SECONDS = 0.2


def wants_progress(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether the client sent a progress token with this request."""
    return (ctx.meta or {}).get("progress_token") is not None


class StepReporter:
    """Reports an instance's completed activities as progress, each once."""

    def __init__(self, app: EddaApp, ctx: ServerRequestContext[Any, Any]) -> None:
        self._app = app
        self._ctx = ctx
        self.reported = 0

    async def report_new(self, instance_id: str) -> None:
        """Report the activities completed since the last report (none if the instance
        does not exist yet)."""
        try:
            history = await self._app.get_history(instance_id)
        except Exception as exc:  # progress is a courtesy: never fail the call for it
            log.debug("could not read the journal of %s for progress: %s", instance_id, exc)
            return
        done = [h["activity_id"] for h in history if h["event_type"] == "ActivityCompleted"]
        # Shielded: a notification cut off half-sent would be numbered again.
        with anyio.CancelScope(shield=True):
            for step in done[self.reported:]:
                self.reported += 1
                await self._ctx.session.report_progress(self.reported, None, f"{step} completed")


async def with_progress(app: EddaApp, ctx: ServerRequestContext[Any, Any], instance_id: str,
                        work: Callable[[], Awaitable[T]]) -> T:
    """``await work()``, reporting the instance's completed activities meanwhile if the
    client asked for progress.

    Raises:
        Exception: Whatever ``work`` raised.
    """
    if not wants_progress(ctx):
        return await work()
    reporter = StepReporter(app, ctx)

    async def follow() -> None:
        while True:
            await reporter.report_new(instance_id)
            await anyio.sleep(POLL_SECONDS)

    outcome: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        try:
            outcome.append(await work())
        except Exception as exc:  # raised below, outside the task group
            failure.append(exc)
        finally:
            group.cancel_scope.cancel()
    await reporter.report_new(instance_id)
    if failure:
        raise failure[0]
    return outcome[0]
