"""Running a node's instances: activation, the resident actors, cancels, wake-ups.

`InstanceRunner` puts instances under the actor supervisor, each as an
`InstanceActor` whose body replays and runs the workflow (`run_workflow`). It
keeps the node's resident actors, and it is the only way in to them: a wake-up
or a cancel is a message posted to the actor's mailbox (`tell`), or, for an
instance that is not resident, a durable row plus a wake-up that activates it.
It tells ``start()`` and ``wait_result`` callers how their instance ended, and
parks instances whose actor keeps crashing. The `EddaApp` owns its lifecycle
and public API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from edda.actors.background import Background
from edda.actors.instance import ActorLeft, Departed, InstanceActor
from edda.actors.instance_journal import ActorStopped, InstanceJournal
from edda.actors.mailbox import Cancel, Message, Passivate, Stop, Wake
from edda.actors.supervisor import Supervisor
from edda.journal import schema
from edda.journal.appends import InstanceChange
from edda.journal.cancel import CancelOutcome, CancelRequest
from edda.journal.entries import WorkflowFailed
from edda.journal.records import Record
from edda.journal.waits import EndAllWaits
from edda.journal.writes import mark_seen
from edda.runtime.hooks import fire
from edda.runtime.registry import app_context
from edda.runtime.replay import run_workflow
from edda.runtime.results import Waiters
from edda.runtime.saga import Outcome, failure_output
from edda.runtime.serialization import error_info

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from edda.actors.address import InstanceMail
    from edda.actors.placement import Placement
    from edda.actors.routing import Router
    from edda.actors.timers import TimerService
    from edda.journal.clock import Clock
    from edda.journal.database import Database
    from edda.journal.group_commit import GroupCommitWriter
    from edda.journal.leases import Claimed
    from edda.journal.retry import RetryOutcome
    from edda.journal.stores import Stores
    from edda.runtime.app import EddaApp
    from edda.runtime.context import Recurred
    from edda.runtime.registry import Registry
    from edda.runtime.retry import RetryPolicy

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
        self.idle_seconds = idle_seconds
        self.clock = clock
        # Every actor's task runs with this node as the current app (Workflow.start,
        # send_event in its code reach this node).
        self.supervisor = Supervisor(self.give_up, on_exit=self._exited,
                                     context=app_context(app))
        #: The node's background work (hooks, handlers, passivations, activations).
        self.background = Background()
        self.waiters = Waiters()
        self._suspended = self.waiters.suspended  # one bound method for every actor
        #: The resident actors, by instance id.
        self.resident: dict[str, InstanceActor] = {}
        #: Activations that wait for a leaving actor of the same instance to end.
        self._deferred: dict[str, tuple[str, int]] = {}
        #: Instances to wake again once their actor has ended (it missed a message).
        self._rewake: set[str] = set()
        #: Cancels committed while an instance's actor was being activated (reading its
        #: journal): the actor starts with them.
        self._early_cancels: dict[str, CancelRequest] = {}
        #: Told when an outbox row was committed (the app's relayer, if any).
        self.on_outbox: Callable[[], None] | None = None
        self.passivated = 0
        self._db: Database | None = None
        self._stores: Stores | None = None
        self._writer: GroupCommitWriter | None = None
        self._timers: TimerService | None = None
        self._router: Router | None = None
        self.placement: Placement | None = None

    def bind(self, db: Database, stores: Stores, writer: GroupCommitWriter,
             timers: TimerService, router: Router, placement: Placement) -> None:
        """Attach the node's database, stores, writer, timer service, router and
        placement."""
        self._db, self._stores, self._writer = db, stores, writer
        self._timers, self._router, self.placement = timers, router, placement

    def _require_placement(self) -> Placement:
        if self.placement is None:
            raise RuntimeError("EddaApp is not initialized")
        return self.placement

    def _require_stores(self) -> Stores:
        if self._stores is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._stores

    def _require_writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._writer

    # -- the way in -----------------------------------------------------------------

    def tell(self, instance_id: str, message: Message) -> bool:
        """Post ``message`` to the instance's actor; False if it is not resident.

        An actor that is leaving notes the message and has its instance woken
        again once it has left, so True means the message will not be lost.
        """
        actor = self.resident.get(instance_id)
        if actor is not None:
            actor.post(message)
            return True
        if self.supervisor.is_running(instance_id):  # being activated, or ending
            if isinstance(message, Cancel) and message.committed is not None:
                self._early_cancels[instance_id] = message.committed
            if isinstance(message, Wake | Cancel):
                self._rewake.add(instance_id)  # if it is ending: wake it once it has
            return True
        return False

    async def stop_all(self) -> None:
        """Every resident actor leaves memory (the node lost its lease): each is told
        `Stop`, then the supervisor waits for them all."""
        for actor in list(self.resident.values()):
            actor.post(Stop())
        await self.supervisor.stop_all()

    async def hand_over(self, partitions: set[int], within: float) -> None:
        """The actors of ``partitions`` leave memory for another node to run them:
        no activity starts from now on, those running may finish and be journaled
        for up to ``within`` seconds (so the next node does not run them again),
        then every actor of the partitions stops."""
        placement = self._require_placement()
        moving = [actor for iid, actor in self.resident.items()
                  if placement.partition(iid) in partitions]
        for actor in moving:
            actor.hold()
        if moving:
            quiet = [asyncio.ensure_future(a.until_quiet()) for a in moving]
            _, late = await asyncio.wait(quiet, timeout=within)
            for task in late:
                task.cancel()
            await asyncio.gather(*quiet, return_exceptions=True)
        await self.stop_partitions(partitions)

    async def stop_partitions(self, partitions: set[int]) -> None:
        """The actors of ``partitions`` leave memory (the partitions moved or their
        lease was lost): each is told `Stop`, then the supervisor waits for them."""
        if not partitions:
            return
        placement = self._require_placement()
        leaving = [iid for iid in self.supervisor.running()
                   if placement.partition(iid) in partitions]
        for iid in leaving:
            actor = self.resident.get(iid)
            if actor is not None:
                actor.post(Stop())
            self._deferred.pop(iid, None)
        await asyncio.gather(*(self.supervisor.stop(iid) for iid in leaving))

    def passivate_idle(self) -> None:
        """Ask every resident actor to passivate now if it is idle (tools and tests)."""
        for actor in list(self.resident.values()):
            actor.post(Passivate())

    # -- running ------------------------------------------------------------------

    def activate(self, instance_id: str, workflow_name: str, epoch: int,
                 records: list[Record] | None = None,
                 created: asyncio.Future[Any] | None = None) -> None:
        """Run an instance under the supervisor; ``records`` spares the first journal read.

        ``created`` is the pending write that creates the instance: the actor
        treats it as its first unsettled write, so nothing leaves the actor (an
        activity's side effects) before the instance itself is committed.

        An instance whose partition this node does not hold at ``epoch`` (it is
        being handed over, or was lost) is not run: its next owner runs it.
        """
        if self.placement is not None and self.placement.epoch_of(instance_id) != epoch:
            return
        running = self.resident.get(instance_id)
        if running is not None or self.supervisor.is_running(instance_id):
            if running is None or running.leaving or running.journal.epoch < epoch:
                # Claimed again while its old actor leaves: run it once that has ended.
                self._deferred[instance_id] = (workflow_name, epoch)
            return
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

        self.supervisor.spawn(instance_id, body, label=f"{workflow_name} {instance_id}")

    def activate_claimed(self, claimed: Claimed) -> None:
        self.activate(claimed.instance_id, claimed.workflow_name, claimed.epoch)

    async def _run(self, instance_id: str, workflow_name: str, epoch: int,
                   records: list[Record] | None,
                   created: asyncio.Future[Any] | None = None) -> None:
        stores = self._require_stores()
        wf = self.registry.workflow(workflow_name)
        if wf is None:
            raise LookupError(f"workflow {workflow_name!r} of instance {instance_id!r} is not "
                              "registered on this node")
        cancel = None
        if records is None:  # a recovery or re-activation: a cancel may be waiting
            records, cancel = await stores.journal.activation(instance_id)
        early = self._early_cancels.pop(instance_id, None)  # committed during that read
        if cancel is None:
            cancel = early
        # The actor waits on its own view of the creation: stopping it (a lost lease)
        # must not cancel the write that start() waits for too.
        own_view = None
        if created is not None:
            own_view = asyncio.shield(created)
            own_view.add_done_callback(mark_seen)  # start() reports its error
        journal = InstanceJournal(instance_id, workflow_name, epoch, records,
                                  self._require_writer(), unsettled=own_view)
        actor = InstanceActor(journal, stores=stores, node_id=self.node_id, clock=self.clock,
                              idle_seconds=self.idle_seconds,
                              on_suspended=self._suspended, cancel=cancel)
        self.resident[instance_id] = actor
        try:
            ended = await actor.run(run_workflow(
                wf, actor, worker_id=self.node_id, hooks=self.hooks,
                default_retry_policy=self.default_retry_policy, host=self, stores=stores,
                db=self._app.database, clock=self.clock, registry=self.registry,
                service_name=self.service_name))
        except ActorStopped:
            # Fenced: another node (or this one, at a new epoch) runs it now. Whoever
            # waits here keeps waiting and reads its outcome from the database; the
            # wake-up once this actor has left reaches the node that runs it.
            self._rewake.add(instance_id)
            raise
        finally:
            if self.resident.get(instance_id) is actor:
                del self.resident[instance_id]
            if actor.missed:
                self._rewake.add(instance_id)
        if isinstance(ended, Departed):
            if ended.reason == "passivated":
                self.passivated += 1
                if self._timers is not None:
                    self._timers.nudge()  # its deadline is now the timer service's
            return
        outcome = ended
        if outcome.recurred is not None:
            self._continue(instance_id, workflow_name, outcome.recurred)
            return
        self.waiters.ended(instance_id, outcome)

    def _exited(self, instance_id: str) -> None:
        """The actor task of ``instance_id`` has ended: do what waited for that."""
        self._early_cancels.pop(instance_id, None)  # a later activation reads its row
        self.waiters.left(instance_id)  # callers still waiting look again
        if instance_id in self._rewake:
            self._rewake.discard(instance_id)
            self.background.spawn(self.wake(instance_id), what=f"the wake-up of {instance_id}")
        deferred = self._deferred.pop(instance_id, None)
        if deferred is not None:
            self.activate(instance_id, *deferred)

    def _continue(self, instance_id: str, workflow_name: str, recurred: Recurred) -> None:
        """Run the instance a recur created; whoever waited on the old one now waits on it."""
        self.waiters.continued(instance_id, recurred)
        new_id = recurred.new_instance_id
        epoch = self._require_placement().epoch_of(new_id)
        if epoch is None:
            return  # its partition moved meanwhile: its new owner runs it
        self.activate(new_id, workflow_name, epoch,
                      [Record(0, recurred.started, recurred.created_at)])
        self.spawn(fire(
            self.hooks, "on_workflow_start", new_id, workflow_name, recurred.started.input))

    async def give_up(self, instance_id: str, error: BaseException) -> None:
        """Park an instance whose actor keeps crashing as failed, with the error.

        Parking reads no journal entry (decoding it may be what fails); whatever
        happens, whoever waits on the instance is told.
        """
        try:
            store = self._require_stores().journal
            row = await store.row(instance_id)
            epoch = self._require_placement().epoch_of(instance_id)
            if (row is not None and row["owner_node"] == self.node_id and epoch is not None
                    and row["status"] in ACTIVE_STATUSES):
                journal = InstanceJournal(instance_id, row["workflow_name"], epoch, [],
                                          self._require_writer(),
                                          next_seq=await store.next_seq(instance_id))
                await journal.append(
                    WorkflowFailed(error=error_info(error)),
                    InstanceChange(status="failed", output=failure_output(error)),
                    effects=(EndAllWaits(instance_id),),
                )
                await fire(self.hooks, "on_workflow_failed", instance_id, row["workflow_name"],
                           error)
        finally:
            self.waiters.ended(instance_id, Outcome(error=error))

    # -- cancellation -------------------------------------------------------------

    async def cancel(self, instance_id: str, cancelled_by: str) -> CancelOutcome:
        """The one way to cancel: through the instance's actor if it is resident here
        (it commits the request, then ends its waits), else by committing the request
        on the instance's row and waking it, so that whoever runs it reads it."""
        if not isinstance(cancelled_by, str) or not cancelled_by:
            raise ValueError("cancelled_by must be a non-empty string naming who cancels")
        now = self.clock.now()
        actor = self.resident.get(instance_id)
        if actor is not None and not actor.leaving:
            reply: asyncio.Future[CancelOutcome] = asyncio.get_running_loop().create_future()
            actor.post(Cancel(cancelled_by, now, reply=reply))
            try:
                return await reply
            except ActorLeft:
                pass  # it left memory first: the durable way below
        outcome = await self._require_stores().journal.request_cancel(instance_id,
                                                                      cancelled_by, now)
        if outcome.accepted:
            self.deliver_cancel(instance_id, outcome)
        return outcome

    async def retry(self, instance_id: str, retried_by: str) -> RetryOutcome:
        """Put a failed instance back to running (see `RequestRetry`) and wake its owner."""
        if not isinstance(retried_by, str) or not retried_by:
            raise ValueError("retried_by must be a non-empty string naming who retries")
        outcome = await self._require_stores().journal.request_retry(
            instance_id, retried_by, self.clock.now())
        if outcome.accepted:
            if self.supervisor.is_running(instance_id):
                self._rewake.add(instance_id)  # its failed run is still leaving: after it
            self._require_router().send(instance_id, "wake")
        return outcome

    def deliver_cancel(self, instance_id: str, outcome: CancelOutcome) -> None:
        """Hand a committed cancel to the instance's actor if it is resident here (an
        activation may have read its row just before the commit), else wake it."""
        request = outcome.request
        assert request is not None
        if not self.tell(instance_id, Cancel(request.by, request.at, committed=request)):
            self._require_router().send(instance_id, "cancel")

    async def cancel_arrived(self, instance_id: str) -> None:
        """A cancel of ``instance_id`` was committed (perhaps by another process): its
        actor takes it if it is resident here, else the instance is run to take it."""
        actor = self.resident.get(instance_id)
        if actor is None or actor.leaving:
            await self.activate_idle(instance_id)
            return
        if actor.cancel is not None:
            return
        request = await self._require_stores().journal.cancel_request(instance_id)
        if request is not None:
            self.tell(instance_id, Cancel(request.by, request.at, committed=request))

    async def deliver_pending_cancels(self) -> None:
        """The sweep's safety net: cancels committed for instances this node owns (or
        nobody does) that have not reached a run yet."""
        pending = await self._require_stores().journal.pending_cancels(self.node_id)
        for instance_id, request in pending:
            actor = self.resident.get(instance_id)
            if actor is None or actor.cancel is None:
                self.deliver_cancel(instance_id, CancelOutcome(True, "pending", None, request))

    # -- wake-ups -----------------------------------------------------------------

    async def wake(self, instance_id: str) -> None:
        """Ask the node that owns ``instance_id`` to run it (at most once; the sweep backs it)."""
        self._require_router().send(instance_id, "wake")

    def _require_router(self) -> Router:
        if self._router is None:
            raise RuntimeError("EddaApp is not initialized")
        return self._router

    def deliver_mail(self, mail: InstanceMail) -> None:
        """Serve mail for instances of this node's partitions: a resident actor takes
        a wake-up (or its cancel) now; any other instance is run to take it."""
        for instance_id in mail.cancel:
            self.background.spawn(self.cancel_arrived(instance_id),
                                  what=f"the cancel of {instance_id}")
        for instance_id in mail.wake:
            if not self.tell(instance_id, Wake()):
                self.background.spawn(self.activate_idle(instance_id),
                                      what=f"the wake-up of {instance_id}")

    async def activate_idle(self, instance_id: str) -> None:
        """Run an instance no actor runs, if its partition is this node's."""
        try:
            if self._require_placement().epoch_of(instance_id) is None:
                return  # another node's: the wake-up reaches it too
            claimed = await self._require_stores().leases.claim(
                instance_id, self.node_id, list(self.registry.workflows()))
            if claimed is not None:
                self.activate_claimed(claimed)
        except Exception:
            log.warning("wake-up of %s failed; the sweep will retry", instance_id, exc_info=True)

    # -- what a running instance may ask of its node (`RunHost`) --------------------

    async def notify(self, instance_id: str) -> None:
        """Wake an instance wherever it is (resident here, passivated, elsewhere)."""
        if not self.tell(instance_id, Wake()):
            await self.wake(instance_id)

    def sibling_id(self, prefix: str, instance_id: str) -> str:
        """A fresh instance id in the partition of ``instance_id`` (a recur's new id:
        its actor runs at the same epoch, on this node)."""
        placement = self._require_placement()
        return placement.id_in(prefix, placement.partition(instance_id))

    async def until_leased(self, instance_id: str) -> None:
        """Return once this node surely still holds ``instance_id``'s partition (its
        lease, as counted locally, has time left): an activity starts only then. If
        it does not, the actor is stopped meanwhile (lost lease) or the lease is
        renewed."""
        placement = self._require_placement()
        while not placement.surely_holds(instance_id):
            await placement.next_renewal()

    def outbox_written(self) -> None:
        """An activity committed outbox rows: wake the relayer, if there is one."""
        if self.on_outbox is not None:
            self.on_outbox()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run node work in the background (the node's background service)."""
        self.background.spawn(coroutine)
