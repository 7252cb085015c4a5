"""Workflows run by several node processes on one database (cluster tests and the
cluster benchmark): each returns the id of the node that finished it."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edda import (
    WorkflowContext,
    activity,
    receive,
    send_to,
    sleep,
    subscribe,
    wait_event,
    workflow,
)


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


@activity
async def clock(ctx: WorkflowContext) -> float:
    return time.time()


@workflow
async def stamp_go(ctx: WorkflowContext, key: str) -> dict[str, float]:
    """Waits for ``go.<key>``; returns when it was sent and when it resumed here."""
    event = await wait_event(ctx, f"go.{key}")
    return {"sent": float(event.data["sent"]), "at": await clock(ctx)}


@workflow
async def ping(ctx: WorkflowContext, peer: str, rounds: int) -> list[float]:
    """Sends to ``peer``'s mailbox and waits for its answer, ``rounds`` times;
    returns each round trip in seconds."""
    await subscribe(ctx, "reply", mode="direct")
    trips = []
    for n in range(rounds):
        began = await clock(ctx)
        await send_to(ctx, peer, {"n": n, "from": ctx.instance_id}, channel="ping")
        await receive(ctx, "reply")
        trips.append(await clock(ctx) - began)
    return trips


@workflow
async def pong(ctx: WorkflowContext, rounds: int) -> int:
    """Answers ``rounds`` pings."""
    await subscribe(ctx, "ping", mode="direct")
    for _ in range(rounds):
        message = await receive(ctx, "ping")
        await send_to(ctx, str(message.data["from"]), {"n": message.data["n"]}, channel="reply")
    return rounds


@activity
async def work(ctx: WorkflowContext, n: int) -> int:
    return n + 1


@workflow
async def busy(ctx: WorkflowContext, n: int) -> int:
    """Three activities in a row (the throughput load)."""
    for _ in range(3):
        n = await work(ctx, n)
    return n


def _mark(key: str, what: str) -> None:
    Path(os.environ["EDDA_SIDE_DIR"], f"{key}.{os.getpid()}.{what}").touch()


async def _held(key: str, hold: float) -> None:
    """Mark the step's beginning, hold ``hold`` s, mark its end (in ``EDDA_SIDE_DIR``)."""
    _mark(key, "began")
    await asyncio.sleep(hold)
    _mark(key, "ended")


@activity
async def marked_step(ctx: WorkflowContext, key: str, hold: float) -> str:
    """Marks when it begins and ends, holding ``hold`` s in between."""
    await _held(key, hold)
    return ctx.worker_id


@activity
async def locked_step(ctx: WorkflowContext, key: str, hold: float) -> str:
    """Writes a row through ``ctx.session`` first (on SQLite: takes the write lock),
    then holds it ``hold`` s."""
    await ctx.session.execute(sa.text("INSERT INTO frozen_steps (key, node) VALUES (:k, :n)"),
                              {"k": key, "n": ctx.worker_id})
    await _held(key, hold)
    return ctx.worker_id


@workflow
async def freeze_me(ctx: WorkflowContext, key: str, locked: bool) -> str:
    """Waits for ``go.<key>``, then runs one marked step."""
    await wait_event(ctx, f"go.{key}")
    if locked:
        return await locked_step(ctx, key, 1.0)
    return await marked_step(ctx, key, 1.0)
