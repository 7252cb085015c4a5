"""Running a node's instances: activation, settlement, parking, wake-ups.

`InstanceRunner` puts instances under the supervisor (replaying their journals),
tells ``start()`` callers how their instance ended or that it first waits,
parks instances whose actor keeps crashing, and turns wake-up messages into
activity: a resident instance re-checks what it waits for, a passivated one is
claimed and replayed. The `EddaApp` owns its lifecycle and public API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from edda.actors.address import wake_subject
from edda.actors.background import Background
from edda.actors.supervisor import Supervisor
from edda.actors.workflow_actor import ActorStopped, WorkflowActor
from edda.journal import schema
from edda.journal.cancel import CancelOutcome, CancelRequest
from edda.journal.entries import WorkflowFailed
from edda.journal.group_commit import InstanceChange
from edda.journal.store import Record
from edda.journal.waits import EndAllWaits
from edda.runtime.errors import InstanceTakenOverError
from edda.runtime.hooks import fire
from edda.runtime.registry import enter_app
from edda.runtime.replay import run_workflow
from edda.runtime.saga import Outcome, failure_output
from edda.runtime.serialization import error_info
from edda.runtime.waits import Waits

if TYPE_CHECKING:

    from edda.actors.timers import TimerService
    from edda.journal.clock import Clock
    from edda.journal.database import Database
    from edda.journal.group_commit import GroupCommitWriter
    from edda.journal.leases import Claimed
    from edda.journal.stores import Stores
    from edda.runtime.app import EddaApp
    from edda.runtime.context import Recurred
    from edda.runtime.registry import Registry
    from edda.runtime.retry import RetryPolicy
    from edda.transports.base import Transport

log = logging.getLogger("edda.instances")

#: Statuses of instances that still have work or waits ahead of them.
ACTIVE_STATUSES = schema.UNFINISHED_STATUSES + schema.WAITING_STATUSES


class InstanceRunner:
    """The instances of one node, and whoever waits on them."""

    def __init__(
        self,
        app: EddaApp,
        node_id: str,
        *,
        service_name: str | None = None,
        hooks: Any,
        default_retry_policy: RetryPolicy | None,
        idle_seconds: float,
        clock: Clock,
    ) -> None:
        self._app = app
        self.registry: Registry = app.registry
        self.node_id = node_id
        self.service_name = service_name
        self.hooks = hooks
        self.default_retry_policy = default_retry_policy
        self.clock = clock
        self.supervisor = Supervisor(self.give_up)
        #: The node's background work (hooks, handlers, passivations, activations).
        self.background = Background()
        self.waits = Waits(lambda: self._require_stores().leases, node_id, clock,
                           idle_seconds=idle_seconds,
                           on_suspended=self.suspended, stop_actor=self.supervisor.stop,
                           after_passivation=self._after_passivation, notify=self.wake,
                           background=self.background)
        self._waiters: dict[str, asyncio.Future[Outcome]] = {}
        #: Callers of `EddaApp.wait_result`, told when the instance ends here.
        self._watchers: dict[str, set[asyncio.Future[Outcome]]] = {}
        #: For start() callers: the instance a recurring one continued as.
        self.final_ids: dict[str, str] = {}
        self._db: Database | None = None
        self._stores: Stores | None = None
        self._writer: GroupCommitWriter | None = None
        self._timers: TimerService | None = None
        self._transport: Transport | None = None

    def bind(self, db: Database, stores: Stores, writer: GroupCommitWriter,
             timers: TimerService, transport: Transport) -> None:
        """Attach the node's database, stores, writer, timer service and transport."""
        self._db, self._stores, self._writer = db, stores, writer
        self._timers, self._transport = timers, transport

    def _require_stores(self) -> Stores:
        if self._stores is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._stores

    def _require_writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._writer

    def _require_db(self) -> Database:
        if self._db is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._db

    # -- whoever waits on an instance ---------------------------------------------

    def expect(self, instance_id: str) -> asyncio.Future[Outcome]:
        """A future told how the instance ends, or that it first waits."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[instance_id] = waiter
        return waiter

    def forget(self, instance_id: str) -> None:
        self._waiters.pop(instance_id, None)

    def settle(self, instance_id: str, outcome: Outcome) -> None:
        waiter = self._waiters.pop(instance_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def watch(self, instance_id: str) -> asyncio.Future[Outcome]:
        """A future told how the instance ends, if it ends on this node."""
        watcher: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(instance_id, set()).add(watcher)
        return watcher

    def unwatch(self, instance_id: str, watcher: asyncio.Future[Outcome]) -> None:
        watchers = self._watchers.get(instance_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[instance_id]

    def ended(self, instance_id: str, outcome: Outcome) -> None:
        """The instance ended on this node: tell whoever waits for it."""
        self.settle(instance_id, outcome)
        for watcher in self._watchers.pop(instance_id, ()):
            if not watcher.done():
                watcher.set_result(outcome)

    def suspended(self, instance_id: str) -> None:
        """The instance started waiting: ``start()`` returns, as in Edda."""
        self.settle(instance_id, Outcome(suspended=True))

    def fail_waiters(self, message: str, error: BaseException | None = None) -> None:
        """Tell every caller still waiting that their instance will not finish here."""
        for waiter in [*self._waiters.values(),
                       *(w for ws in self._watchers.values() for w in ws)]:
            if not waiter.done():
                waiter.set_exception(error if isinstance(error, Exception)
                                     else RuntimeError(message))
        self._waiters.clear()
        self._watchers.clear()

    # -- running ------------------------------------------------------------------

    def activate(self, instance_id: str, workflow_name: str, epoch: int,
                 records: list[Record] | None = None,
                 created: asyncio.Future[Any] | None = None) -> None:
        """Run an instance under the supervisor; ``records`` spares the first journal read.

        ``created`` is the pending write that creates the instance: the actor
        treats it as its first unsettled write, so nothing leaves the actor (an
        activity's side effects) before the instance itself is committed.
        """
        known, creating = records, created

        async def body() -> None:
            nonlocal known, creating
            # A restart always re-reads the journal, once the instance is surely stored.
            (given, known), (pending, creating) = (known, None), (creating, None)
            if given is None and created is not None:
                await asyncio.wait([created])
                if created.cancelled() or created.exception() is not None:
                    return  # never stored: nothing to run (start() says so)
            await self._run(instance_id, workflow_name, epoch, given, pending)

        self.supervisor.spawn(instance_id, body)

    def activate_claimed(self, claimed: Claimed) -> None:
        self.activate(claimed.instance_id, claimed.workflow_name, claimed.epoch)

    async def _run(self, instance_id: str, workflow_name: str, epoch: int,
                   records: list[Record] | None,
                   created: asyncio.Future[Any] | None = None) -> None:
        writer, db, stores = self._require_writer(), self._require_db(), self._require_stores()
        enter_app(self._app)  # this actor's task (and its children) run on this node
        wf = self.registry.workflow(workflow_name)
        if wf is None:
            raise LookupError(f"workflow {workflow_name!r} of instance {instance_id!r} is not "
                              "registered on this node")
        cancel = None
        if records is None:  # a recovery or re-activation: a cancel may be waiting
            loaded, cancel = await stores.journal.activation(instance_id)
            records = loaded
        actor = WorkflowActor(instance_id, workflow_name, epoch, records, writer,
                              unsettled=created)
        try:
            outcome = await run_workflow(wf, actor, worker_id=self.node_id, hooks=self.hooks,
                                         default_retry_policy=self.default_retry_policy,
                                         host=self.waits, stores=stores, db=db,
                                         clock=self.clock,
                                         registry=self.registry,
                                         service_name=self.service_name, cancel=cancel)
        except ActorStopped as exc:
            self.settle(instance_id, Outcome(error=InstanceTakenOverError(
                f"{exc}; its outcome is available from get_instance({instance_id!r})")))
            raise
        if outcome.recurred is not None:
            self._continue(instance_id, workflow_name, outcome.recurred)
            return
        self.ended(instance_id, outcome)

    def _continue(self, instance_id: str, workflow_name: str, recurred: Recurred) -> None:
        """Run the instance a recur created; whoever waited on the old one now waits on it."""
        new_id = recurred.new_instance_id
        waiter = self._waiters.pop(instance_id, None)
        if waiter is not None:
            self._waiters[new_id] = waiter
            self.final_ids[instance_id] = new_id
        for watcher in self._watchers.pop(instance_id, ()):
            if not watcher.done():
                watcher.set_result(Outcome(recurred=recurred))
        self.activate(new_id, workflow_name, 1,
                      [Record(0, recurred.started, recurred.created_at)])
        self.waits.spawn(fire(
            self.hooks, "on_workflow_start", new_id, workflow_name, recurred.started.input))

    async def give_up(self, instance_id: str, error: BaseException) -> None:
        """Park an instance whose actor keeps crashing as failed, with the error.

        Parking reads no journal entry (decoding it may be what fails); whatever
        happens, whoever waits on the instance is told.
        """
        try:
            journal = self._require_stores().journal
            row = await journal.row(instance_id)
            if (row is not None and row["owner_node"] == self.node_id
                    and row["status"] in ACTIVE_STATUSES):
                actor = WorkflowActor(instance_id, row["workflow_name"], row["epoch"], [],
                                      self._require_writer(),
                                      next_seq=await journal.next_seq(instance_id))
                await actor.append(
                    WorkflowFailed(error=error_info(error)),
                    InstanceChange(status="failed", output=failure_output(error)),
                    effects=(EndAllWaits(instance_id),),
                )
                await fire(self.hooks, "on_workflow_failed", instance_id, row["workflow_name"],
                           error)
        finally:
            self.ended(instance_id, Outcome(error=error))

    # -- cancellation -------------------------------------------------------------

    async def cancel(self, instance_id: str, cancelled_by: str) -> CancelOutcome:
        """Commit a cancel request, then hand it to the instance wherever it runs."""
        if not isinstance(cancelled_by, str) or not cancelled_by:
            raise ValueError("cancelled_by must be a non-empty string naming who cancels")
        run = self.waits.runs.get(instance_id)
        now = self.clock.now()
        if run is not None:
            if run.compensating or run.finishing:
                return CancelOutcome(False, f"instance {instance_id!r} cannot be cancelled: "
                                     "it is already ending")
            if run.cancel is not None:
                return CancelOutcome(False, "a cancel was already requested by "
                                     f"{run.cancel.by!r}", self.node_id, run.cancel)
            # Before the commit: once it is committed, no new activity may start here.
            run.cancel = CancelRequest(cancelled_by, now, "running")
        try:
            outcome = await self._require_stores().journal.request_cancel(
                instance_id, cancelled_by, now)
        except BaseException:
            if run is not None:
                run.cancel = None
            raise
        if run is not None:
            run.cancel = outcome.request if outcome.accepted else None
        if outcome.accepted:
            self.deliver_cancel(instance_id, outcome)
        return outcome

    def deliver_cancel(self, instance_id: str, outcome: CancelOutcome) -> None:
        """Hand a committed cancel to a run of this node, or wake the instance so that
        whoever runs (or claims) it reads the request."""
        assert outcome.request is not None
        if self.waits.runs.get(instance_id) is not None or self.supervisor.is_running(instance_id):
            self.waits.cancel(instance_id, outcome.request)
        else:
            self.waits.spawn(self.wake(instance_id))

    async def deliver_pending_cancels(self) -> None:
        """The sweep's safety net: cancels committed for instances this node owns (or
        nobody does) that have not reached a run yet."""
        pending = await self._require_stores().journal.pending_cancels(self.node_id)
        for instance_id, request in pending:
            run = self.waits.runs.get(instance_id)
            if run is None or run.cancel is None:
                self.deliver_cancel(instance_id, CancelOutcome(True, "pending", None, request))

    # -- wake-ups -----------------------------------------------------------------

    async def wake(self, instance_id: str) -> None:
        """Ask the node that owns ``instance_id`` to run it (at most once; the sweep backs it)."""
        assert self._transport is not None
        await self._transport.publish(wake_subject(instance_id), b"")

    async def activate_idle(self, instance_id: str) -> None:
        """Run an instance no actor runs: free (passivated) to claim, or ours already."""
        try:
            stores = self._require_stores()
            claimed = await stores.leases.claim(instance_id, self.node_id,
                                                list(self.registry.workflows()))
            if claimed is not None:
                self.activate_claimed(claimed)
                return
            row = await stores.journal.row(instance_id)
            if (row is not None and row["status"] in ACTIVE_STATUSES
                    and row["owner_node"] == self.node_id
                    and not self.supervisor.is_running(instance_id)):
                self.activate(instance_id, row["workflow_name"], row["epoch"])
        except Exception:
            log.warning("wake-up of %s failed; the sweep will retry", instance_id, exc_info=True)

    async def _after_passivation(self, instance_id: str, event_pending: bool) -> None:
        if self._timers is not None:
            self._timers.nudge()
        if event_pending:  # an event arrived while the instance was being given up
            await self.wake(instance_id)
