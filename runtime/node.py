"""Assembling a node: its parts, its services and its supervision tree.

`EddaApp.initialize` builds a `Node` and starts it; `EddaApp.shutdown` stops
it. The services start in this order and stop in the reverse one:

1. journal writer (group commit),
2. lease heartbeat (the node's row and partitions: `Placement`; it takes this
   node's share of the partitions before the node is ready),
3. actor supervisor (the workflow actors),
4. background work (hooks, handlers, passivations, wake-up activations),
5. transport listener (wake-ups),
6. membership listener (another node joined, left or freed partitions:
   rebalance now),
   liveness (only on NATS: says this node is alive, probes the silent ones),
7. recovery sweep (activates the unfinished instances of the node's partitions;
   its first sweep runs before the node is ready, and one more whenever the node
   gains partitions),
8. timer service (due waits of the passivated instances of its partitions),
9. outbox relayer (if the app has one).

A node announces on the transport that it joined once it is ready, and that
it left once its partitions are free, so the other nodes of its service
rebalance at once.

If a service keeps crashing the tree stops the node; `Node.failed` then gives
its instances back, tells everyone waiting on the node, and the app refuses
further work with the reason.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from edda.actors.address import Addresses
from edda.actors.liveness import Liveness
from edda.actors.membership import (
    MembershipListener,
    NodeAlive,
    NodeJoined,
    NodeLeft,
    NodeMessage,
    PartitionsFreed,
    announce,
)
from edda.actors.node import NodeSupervisor, ServiceStartError
from edda.actors.placement import Placement
from edda.actors.recovery import Recovery
from edda.actors.routing import PartitionInbox, Router
from edda.actors.timers import TimerService
from edda.journal.database import shown_url
from edda.journal.faults import describe
from edda.journal.group_commit import GroupCommitWriter
from edda.journal.leases import RemoveNodes
from edda.journal.migrations import migrate
from edda.journal.stores import Stores, sql_stores
from edda.journal.writes import write_alone
from edda.runtime.relayer import OutboxRelayer
from edda.transports.bridge import BridgedTransport
from edda.transports.nats import NatsTransport

if TYPE_CHECKING:
    from collections.abc import Callable

    from edda.actors.node import Service
    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.node")

#: How long a starting node waits for the others to give it its share.
_SHARE_WAIT = 1.0
#: On NATS, the share of its lease a node must have left to start an activity:
#: others may declare it dead once less than half is left, if NATS says it is gone.
_NATS_START_MARGIN = 0.55
#: How long a stopping node lets its running activities finish.
_LEAVING_DRAIN = 0.5


class Node:
    """The running parts of one `EddaApp`."""

    def __init__(self, app: EddaApp) -> None:
        self._app = app
        self.addresses: Addresses | None = None
        self._gaps_off: Callable[[], None] | None = None
        self.db = app.database
        self.writer = GroupCommitWriter(self.db, app.worker_id, max_batch=app._max_batch,
                                        now=app.clock.now)
        self.stores: Stores = sql_stores(self.db, self.writer)
        runner = app._runner
        self.runner = runner
        self.background = runner.background

        def names() -> list[str]:
            return list(app.registry.workflows())

        transport = app.transport
        self.liveness: Liveness | None = None
        if isinstance(transport, NatsTransport):
            self.liveness = Liveness(transport, app.worker_id, app.liveness_interval,
                                     on_change=self._nudge,
                                     forget_after=10 * app.lease_seconds)
        self.placement = Placement(self.stores.leases, app.worker_id, app.service_name,
                                   app.lease_seconds, clock=app.clock,
                                   on_lost=self._lost,
                                   on_handover=runner.hand_over, on_gained=self._gained,
                                   on_released=self._released,
                                   unreachable=self.liveness.unreachable
                                   if self.liveness is not None else frozenset(),
                                   start_margin=_NATS_START_MARGIN * app.lease_seconds
                                   if self.liveness is not None else None,
                                   observer=app.observer)
        self.timers = TimerService(self.stores.leases, app.worker_id, names,
                                   runner.activate_claimed, clock=app.clock,
                                   max_sleep=app.recovery_interval)
        self.router = Router(app.transport, self.placement.partition,
                             lambda iid: self.placement.epoch_of(iid) is not None,
                             runner.deliver_mail)
        self.listener = PartitionInbox(app.transport, self.router,
                                       lambda: list(self.placement.owned), runner.deliver_mail)
        self.members = MembershipListener(app.transport, app.worker_id,
                                          self._news)
        self.recovery = Recovery(
            self.stores, app.worker_id, names, runner.activate_claimed,
            runner.supervisor.is_running, interval=app.recovery_interval, clock=app.clock,
            wake=runner.wake, cancels=runner.deliver_pending_cancels,
            retention_seconds=app.message_retention_days * 86400.0)
        self.relayer: OutboxRelayer | None = None
        services: list[Service] = [self.writer, self.placement, runner.supervisor,
                                   self.background,
                                   self.listener, self.members, self.recovery, self.timers]
        if self.liveness is not None:
            services.insert(services.index(self.members) + 1, self.liveness)
        if app.outbox_enabled:
            assert app.broker_url is not None
            self.relayer = OutboxRelayer(app, app.broker_url, **app._outbox_options)
            services.append(self.relayer)
        self.tree = NodeSupervisor(services, on_failure=self.failed,
                                   on_restarted=lambda name: self.recovery.sweep_soon(),
                                   on_failing=lambda: self.writer.abandon(timeout=1.0),
                                   start_timeout=app.start_timeout)
        runner.bind(self.db, self.stores, self.writer, self.timers, self.router,
                    self.placement)

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
                self.addresses = Addresses(await self.stores.leases.cluster_id())
                self.router.addresses = self.addresses
                self.members.subject = self.addresses.members
                if self.liveness is not None:
                    self.liveness.addresses = self.addresses
                transport = self._app.transport
                if self._app._own_transport and isinstance(transport, BridgedTransport):
                    await transport.start()
                if isinstance(transport, NatsTransport):
                    self._gaps_off = transport.on_gap(self._gap)
                    # NATS down: the node works on, says so, and keeps trying.
                    await transport.start(timeout=1.0)
        except TimeoutError:
            raise ServiceStartError("database", f"{shown_url(self._app.db_url)} did not answer "
                                                f"within {self._app.start_timeout:g} s") from None
        except Exception as exc:
            raise ServiceStartError("database", f"cannot use {shown_url(self._app.db_url)} "
                                                f"({describe(exc)})") from exc
        if self.relayer is not None:
            self.runner.on_outbox = self.relayer.wake
        await self.tree.start()
        await self._announce(NodeJoined(self._app.worker_id))
        # The other nodes give this one its share at once; a node that does not
        # answer (frozen) gives it up when its lease runs out.
        await self.placement.wait_for_share(_SHARE_WAIT)

    async def stop(self) -> None:
        """Stop the services in reverse order; the node's instances are given back."""
        self.runner.on_outbox = None
        # Activities under way finish and are journaled first (briefly), so the
        # nodes that take the partitions over do not run them again.
        leaving = set(self.placement.owned)
        self.placement.leaving |= leaving  # nothing new is activated there meanwhile
        await self.runner.hand_over(leaving, _LEAVING_DRAIN)
        await self.tree.stop()
        if self._gaps_off is not None:
            self._gaps_off()
        if self.tree.failure is None:  # its instances are free: the others take them now
            await self._announce(NodeLeft(self._app.worker_id))

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
        await self._announce(NodeLeft(self._app.worker_id))

    def _news(self, news: NodeMessage) -> None:
        if self.liveness is not None:
            if isinstance(news, NodeLeft):
                self.liveness.left(news.node_id)
            else:
                self.liveness.heard(news.node_id)
        if not isinstance(news, NodeAlive):
            self.placement.nudge()

    def _nudge(self) -> None:
        self.placement.nudge()

    def _gap(self, why: str) -> None:
        """The transport may have lost messages: sweep the database for them now."""
        log.info("sweeping at once: %s", why)
        self.recovery.sweep_soon()

    async def _gained(self, partitions: dict[int, int]) -> None:
        """Partitions became this node's: subscribe to their address, then run their
        unfinished instances, fire their due timers, deliver what waits for their
        waiting ones."""
        await self.listener.follow()
        self.recovery.sweep_soon()
        self.timers.nudge()

    async def _lost(self, partitions: set[int]) -> None:
        await self.runner.stop_partitions(partitions)
        await self.listener.follow()

    async def _released(self) -> None:
        await self.listener.follow()
        await self._announce(PartitionsFreed(self._app.worker_id))

    async def _announce(self, news: NodeMessage) -> None:
        if self.addresses is not None:
            await announce(self._app.transport, self.addresses.members, news)
