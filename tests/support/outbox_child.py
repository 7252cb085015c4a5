"""A child process for crash tests of the HTTP edge and the outbox.

Usage: ``outbox_child.py MODE DB_URL [BROKER_URL]``.

* ``serve``: start ``awaits_ping`` (it waits for the CloudEvent ``ping``), serve
  the app with uvicorn on 127.0.0.1, print ``<port> <instance id>``, hang.
* ``commit``: run ``ships_order`` with no relayer: its activity writes a row of
  its own table through ``ctx.session`` and an outbox event; print
  ``committed`` once the workflow completed, then hang until killed.
* ``relay``: the same with the app's relayer on ``BROKER_URL``; hang.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import sqlalchemy as sa
import uvicorn

from edda import (
    EddaApp,
    WorkflowContext,
    activity,
    send_event_transactional,
    wait_event,
    workflow,
)

shipments = sa.Table("shipments", sa.MetaData(), sa.Column("order_id", sa.String(64)))


@workflow
async def awaits_ping(ctx: WorkflowContext) -> Any:
    return (await wait_event(ctx, "ping")).data


@activity
async def ship(ctx: WorkflowContext, order_id: str) -> str:
    await ctx.session.execute(sa.insert(shipments).values(order_id=order_id))
    return await send_event_transactional(ctx, "order.shipped", "/shipping",
                                          {"order_id": order_id})


@workflow
async def ships_order(ctx: WorkflowContext, order_id: str) -> str:
    return await ship(ctx, order_id)


async def create_tables(app: EddaApp) -> None:
    engine = app.database.user_engine()
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: shipments.create(sync, checkfirst=True))


async def main(mode: str, db_url: str, broker_url: str | None) -> None:
    relay = mode == "relay"
    app = EddaApp("outbox-crash", db_url, outbox_enabled=relay, broker_url=broker_url,
                  outbox_options={"request_timeout": 1.0})
    await app.initialize()
    if mode == "serve":
        instance_id = await awaits_ping.start()
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers only this flag)
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(port, instance_id, flush=True)
        await task
        return
    await create_tables(app)
    await ships_order.start(order_id="o-1")
    print("committed", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
