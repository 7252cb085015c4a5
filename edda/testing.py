"""Helpers for testing code that runs on Edda.

`MockClock` stands still until the test moves it, so a workflow that sleeps for
three days is tested in milliseconds::

    clock = MockClock()
    async with EddaApp("test", "sqlite:///t.db", clock=clock) as app:
        instance_id = await reminder.start()      # sleeps 3 days
        clock.advance(3 * 86400)
        await app.wait_result(instance_id)

`sweep_now` makes a node do at once what its recovery sweep does every
``recovery_interval``: claim orphaned instances, resume its own idle ones and
redeliver what a lost wake-up missed. `passivate_idle` lets every idle instance
leave memory now, and `is_resident` tells whether one is in memory.
`kill_service` crashes one of a node's services, as a supervision test needs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from edda.journal.clock import MockClock as MockClock

if TYPE_CHECKING:
    from edda.runtime.app import EddaApp
    from edda.runtime.node import Node

__all__ = ("MockClock", "is_resident", "kill_service", "passivate_idle", "sweep_now")


def _node(app: EddaApp) -> Node:
    node = app._node
    if node is None:
        raise RuntimeError("the app is not running; await app.initialize() first")
    return node


async def sweep_now(app: EddaApp) -> None:
    """Rebalance the node's partitions (taking those of nodes found dead) and run
    its recovery sweep, now.

    Raises:
        RuntimeError: If the app is not running.
    """
    node = _node(app)
    await node.placement.rebalance()
    await node.recovery.sweep()


def passivate_idle(app: EddaApp) -> None:
    """Ask every instance in the node's memory to passivate now if it only waits."""
    _node(app).runner.passivate_idle()


def is_resident(app: EddaApp, instance_id: str) -> bool:
    """Whether the instance is in the node's memory (has a live actor there)."""
    return instance_id in _node(app).runner.resident


async def kill_service(app: EddaApp, name: str, *, timeout: float = 10.0) -> None:
    """Crash one of the node's services (``"journal writer"``, ``"lease heartbeat"``,
    ``"transport listener"``, ``"timer service"``, ...) and return once its supervisor
    has started it again, or the node has stopped because it crashed too often.

    Raises:
        RuntimeError: If the app is not running.
        LookupError: If the node has no running service of that name.
        TimeoutError: If neither happened within ``timeout`` seconds.
    """
    tree = _node(app).tree
    before = tree.starts.get(name, 0)
    tree.kill(name)
    async with asyncio.timeout(timeout):
        await tree.started_again(name, before)
