"""Workflows run by several node processes on one database (cluster tests and the
cluster benchmark): each returns the id of the node that finished it."""

from __future__ import annotations

from typing import Any

from edda import WorkflowContext, activity, receive, sleep, subscribe, wait_event, workflow


@activity
async def finished_on(ctx: WorkflowContext) -> str:
    return ctx.worker_id


@workflow
async def await_go(ctx: WorkflowContext, key: str) -> dict[str, Any]:
    """Waits for the CloudEvent ``go.<key>``."""
    event = await wait_event(ctx, f"go.{key}")
    return {"node": await finished_on(ctx), "data": event.data}


@workflow
async def read_inbox(ctx: WorkflowContext) -> dict[str, Any]:
    """Waits for one message in its direct mailbox ``inbox``."""
    await subscribe(ctx, "inbox", mode="direct")
    message = await receive(ctx, "inbox")
    return {"node": await finished_on(ctx), "data": message.data}


@workflow
async def nap(ctx: WorkflowContext, seconds: float) -> str:
    """Sleeps durably."""
    await sleep(ctx, seconds)
    return await finished_on(ctx)
