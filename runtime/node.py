"""Assembling a node: its parts, its services and its supervision tree.

`EddaApp.initialize` builds a `Node` and starts it; `EddaApp.shutdown` stops
it. The services start in this order and stop in the reverse one:

1. journal writer (group commit),
2. lease heartbeat (the node's lease row),
3. actor supervisor (the workflow actors),
4. background work (hooks, handlers, passivations, wake-up activations),
5. transport listener (wake-ups),
6. membership listener (another node left: claim its instances now),
7. recovery sweep (claims orphans; its first sweep runs before the node is ready),
8. timer service (due waits of passivated instances),
9. outbox relayer (if the app has one).

A node that stops gracefully announces it on the transport once its instances
are free, so the other nodes of its service take them over at once.

If a service keeps crashing the tree stops the node; `Node.failed` then gives
its instances back, tells everyone waiting on the node, and the app refuses
further work with the reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from edda.actors.leases import NodeLease
from edda.actors.membership import MembershipListener, announce_left
from edda.actors.node import NodeSupervisor, ServiceStartError
from edda.actors.recovery import Recovery
from edda.actors.timers import TimerService
from edda.journal.group_commit import GroupCommitWriter
from edda.journal.leases import RemoveNodes
from edda.journal.migrations import migrate
from edda.journal.stores import Stores, sql_stores
from edda.journal.writes import write_alone
from edda.runtime.relayer import OutboxRelayer
from edda.runtime.wakes import WakeListener

if TYPE_CHECKING:
    from edda.actors.node import Service
    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.node")


class Node:
    """The running parts of one `EddaApp`."""

    def __init__(self, app: EddaApp) -> None:
        self._app = app
        self.db = app.database
        self.writer = GroupCommitWriter(self.db, app.worker_id, max_batch=app._max_batch,
                                        now=app.clock.now)
        self.stores: Stores = sql_stores(self.db, self.writer)
        runner = app._runner
        self.runner = runner
        self.background = runner.background

        def names() -> list[str]:
            return list(app.registry.workflows())

        self.lease = NodeLease(self.stores.leases, app.worker_id, app.service_name,
                               app.lease_seconds, self._lost_lease, self._regained_lease,
                               clock=app.clock)
        self.timers = TimerService(self.stores.leases, app.worker_id, names,
                                   runner.activate_claimed, clock=app.clock,
                                   max_sleep=app.recovery_interval)
        self.listener = WakeListener(app.transport, runner, self.background)
        self.members = MembershipListener(app.transport, app.service_name, app.worker_id,
                                          self._node_left)
        self.recovery = Recovery(
            self.stores, self.lease, names, runner.activate_claimed,
            runner.supervisor.is_running, interval=app.recovery_interval, clock=app.clock,
            wake=runner.wake, on_freed=self.timers.nudge, cancels=runner.deliver_pending_cancels,
            retention_seconds=app.message_retention_days * 86400.0)
        self.relayer: OutboxRelayer | None = None
        services: list[Service] = [self.writer, self.lease, runner.supervisor, self.background,
                                   self.listener, self.members, self.recovery, self.timers]
        if app.outbox_enabled:
            assert app.broker_url is not None
            self.relayer = OutboxRelayer(app, app.broker_url, **app._outbox_options)
            services.append(self.relayer)
        self.tree = NodeSupervisor(services, on_failure=self.failed,
                                   on_restarted=lambda name: self.recovery.sweep_soon(),
                                   on_failing=lambda: self.writer.abandon(timeout=1.0),
                                   start_timeout=app.start_timeout)
        runner.bind(self.db, self.stores, self.writer, self.timers, app.transport)

    async def start(self) -> None:
        """Migrate the schema, then start the services in order.

        Raises:
            ServiceStartError: Naming the database or the service that could not
                start.
        """
        try:
            with anyio.fail_after(self._app.start_timeout):
                await migrate(self.db)
                await self.db.open_quick_reader()
        except TimeoutError:
            raise ServiceStartError("database", "it did not answer within "
                                                f"{self._app.start_timeout:g} s") from None
        except Exception as exc:
            raise ServiceStartError("database", exc) from exc
        if self.relayer is not None:
            self.runner.on_outbox = self.relayer.wake
        await self.tree.start()

    async def stop(self) -> None:
        """Stop the services in reverse order; the node's instances are given back."""
        self.runner.on_outbox = None
        await self.tree.stop()
        if self.tree.failure is None:  # its instances are free: the others take them now
            await announce_left(self._app.transport, self._app.service_name,
                                self._app.worker_id)

    async def failed(self, error: BaseException) -> None:
        """The tree stopped itself: give the instances back and tell whoever waits."""
        self._app._stopped_by(error)
        self.runner.waiters.fail_all(str(error), error)
        with anyio.move_on_after(self._app.lease_seconds):
            try:
                await write_alone(self.db, RemoveNodes([self._app.worker_id]))
            except Exception:
                log.warning("could not give the instances of node %s back; its lease "
                            "expires on its own", self._app.worker_id, exc_info=True)
                return
        await announce_left(self._app.transport, self._app.service_name, self._app.worker_id)

    def _node_left(self, node_id: str) -> None:
        self.recovery.sweep_soon()
        self.timers.nudge()

    async def _lost_lease(self) -> None:
        await self.runner.stop_all()

    async def _regained_lease(self) -> None:
        await self.recovery.sweep()
