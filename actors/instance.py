"""The instance actor: one resident workflow instance, its run state and its mailbox.

A resident instance is one `InstanceActor`. The workflow's own code (the
*body*, supplied by the runtime) runs in the actor's task. The actor owns the
instance's run state: the cancel it accepted, whether it is finishing or
compensating, how many of its operations wait and how many are blocked, its
idle timer. Other tasks never change that state; they post messages
(`edda.actors.mailbox`), which the actor handles one at a time, in order (at
once when that needs no I/O, else in a short task of its own while later
messages wait their turn):

- `Wake` and `TimerDue` make every pending wait look again;
- `Cancel` is committed by the actor itself (no new durable call starts while
  it commits), then every wait is woken to end in the cancel;
- `Passivate` (its own idle timer) gives the instance up if it is still idle:
  the release is one transaction that refuses an instance whose wait ended
  meanwhile, and whatever arrives while the actor leaves is noted (`missed`)
  so that the instance is woken again once it has left.

The body reports what it does through the actor (`enter_wait`, `blocked_until`,
`begin_work`, ...); that is how the actor knows it is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from edda.actors.mailbox import (
    Cancel,
    Mailbox,
    Message,
    Passivate,
    Signal,
    Stop,
    TimerDue,
    Wake,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from edda.actors.instance_journal import InstanceJournal
    from edda.journal.cancel import CancelRequest
    from edda.journal.clock import Clock, TimerHandle
    from edda.journal.stores import Stores

log = logging.getLogger("edda.actors")
T = TypeVar("T")


class ActorLeft(Exception):
    """The actor left memory before it could handle the message (try the durable path)."""


class Departed:
    """What `InstanceActor.run` returns when the actor left memory with its instance
    unfinished: ``"passivated"`` or ``"stopped"``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Departed({self.reason!r})"


class InstanceActor:
    """A resident workflow instance."""

    __slots__ = ("_clock", "_committing", "_departure", "_handler", "_idle_seconds",
                 "_idle_timer", "_interrupt", "_node_id", "_on_suspended", "_quiet", "_stores",
                 "_task", "_wakes", "blocked", "body_ended", "busy", "cancel", "compensating",
                 "finishing", "held", "instance_id", "journal", "leaving", "lost", "mailbox",
                 "missed", "waiting")

    def __init__(
        self,
        journal: InstanceJournal,
        *,
        stores: Stores,
        node_id: str,
        clock: Clock,
        idle_seconds: float,
        on_suspended: Callable[[str], None],
        cancel: CancelRequest | None = None,
    ) -> None:
        self.journal = journal
        self.instance_id = journal.instance_id
        self.mailbox = Mailbox()
        self._stores = stores
        self._node_id = node_id
        self._clock = clock
        self._idle_seconds = idle_seconds
        self._on_suspended = on_suspended
        #: The cancel this instance accepted; from then on no new durable call starts.
        self.cancel: CancelRequest | None = cancel
        #: While a cancel request is being committed, durable calls wait for this.
        self._committing: asyncio.Event | None = None
        #: The body has ended and its outcome is being journaled: too late to cancel.
        self.finishing = False
        #: Compensations are running: durable calls are not allowed, cancels neither.
        self.compensating = False
        #: The body has returned or raised: what is left of it (the other branches of
        #: a gather) starts nothing new.
        self.body_ended = False
        self._interrupt: asyncio.Event | None = None  # cuts short pauses between attempts
        #: A branch left over after the body ended lost a journal write (or was fenced):
        #: the run must not end as if its step had not run.
        self.lost: BaseException | None = None
        self.waiting = 0
        self.blocked = 0
        self.busy = 0
        self._wakes: set[Signal] | None = None  # made by the first wait
        self._idle_timer: TimerHandle | None = None
        #: True once the actor has decided to leave memory.
        self.leaving = False
        #: Something arrived while it was leaving: wake the instance again once it left.
        self.missed = False
        self._task: asyncio.Task[Any] | None = None
        self._handler: asyncio.Task[None] | None = None
        self._departure: str | None = None
        #: Being handed over to another node: no new activity starts.
        self.held = False
        self._quiet: asyncio.Event | None = None

    # -- the mailbox ----------------------------------------------------------------

    def post(self, message: Message) -> bool:
        """Hand the actor a message; False if it is leaving (then only noted).

        Messages are handled one at a time, in the order they came: at once when
        handling needs no I/O (a wake-up sets the waits' signals), else in a short
        task of the actor's (a cancel commits, a passivation releases), with the
        messages behind it waiting their turn.
        """
        if self.leaving:
            self._unhandled(message)
            return False
        self.mailbox.post(message)
        self._handle_next()
        return True

    def _handle_next(self) -> None:
        mailbox = self.mailbox
        while self._handler is None and not self.leaving and mailbox:
            match mailbox.pop():
                case Wake() | TimerDue():
                    if self.finishing:  # for what comes after this run (a retry): again
                        self.missed = True  # once the actor has left
                    self._wake_waits()
                case Cancel(committed=request) if request is not None:
                    # Stored elsewhere: an activation may have read the row just before.
                    if self.cancel is None and not self.finishing and not self.body_ended:
                        self._accept(request)
                case Cancel() as message:
                    self._handle(self._cancel(message))
                case Passivate():
                    if self.idle:
                        self._handle(self._passivate())
                case Stop():
                    self._depart("stopped")

    def _handle(self, coroutine: Coroutine[Any, Any, None]) -> None:
        handler = self._handler = asyncio.get_running_loop().create_task(coroutine)
        handler.add_done_callback(self._handled)

    def _handled(self, handler: asyncio.Task[None]) -> None:
        if self._handler is handler:
            self._handler = None
        if not handler.cancelled() and handler.exception() is not None:
            log.error("actor %s could not handle a message", self.instance_id,
                      exc_info=handler.exception())
        self._handle_next()

    def _depart(self, reason: str) -> None:
        """Leave memory: the body is cancelled, and `run` returns `Departed`."""
        self._departure = reason
        self.leaving = True
        self._stop_idle_timer()
        if self._task is not None:
            self._task.cancel()

    async def run(self, body: Coroutine[Any, Any, T]) -> T | Departed:
        """Run the body in this task until it ends (its value) or the actor leaves
        memory (`Departed`).

        Raises:
            Exception: What the body raised (the supervisor decides what follows).
        """
        task = self._task = asyncio.current_task()
        try:
            return await body
        except asyncio.CancelledError:
            if self._departure is None or task is None:
                raise
            task.uncancel()  # the actor's own doing: it left memory, nothing failed
            return Departed(self._departure)
        finally:
            self.leaving = True
            self._task = None
            self._stop_idle_timer()
            # A handler under way is left to finish: a cancel it is committing still
            # answers its caller (with what the database said), a release still ends.
            for message in self.mailbox.take_all():
                self._unhandled(message)

    def _unhandled(self, message: Message) -> None:
        match message:
            case Cancel(reply=reply) if reply is not None:
                if not reply.done():
                    reply.set_exception(ActorLeft(self.instance_id))
            case Wake() | TimerDue() | Cancel():
                self.missed = True

    def _wake_waits(self) -> None:
        for event in self._wakes or ():
            event.set()

    # -- cancel ---------------------------------------------------------------------

    async def _cancel(self, message: Cancel) -> None:
        reply = message.reply
        assert reply is not None
        from edda.journal.cancel import CancelOutcome

        if reply.done():  # the caller gave up
            return
        if self.finishing or self.compensating or self.body_ended:
            reply.set_result(CancelOutcome(False, f"instance {self.instance_id!r} cannot be "
                                                  "cancelled: it is already ending"))
            return
        if self.cancel is not None:
            reply.set_result(CancelOutcome(False, "a cancel was already requested by "
                                                  f"{self.cancel.by!r}", self._node_id,
                                           self.cancel))
            return
        # No durable call starts while this commits (several may wait: an Event).
        committing = self._committing = asyncio.Event()
        try:
            outcome = await self._stores.journal.request_cancel(self.instance_id, message.by,
                                                                message.at)
        except Exception as exc:
            if not reply.done():
                reply.set_exception(exc)
            return
        finally:
            self._committing = None
            committing.set()
        if outcome.accepted:
            assert outcome.request is not None
            self._accept(outcome.request)
        if not reply.done():
            reply.set_result(outcome)

    def _accept(self, request: CancelRequest) -> None:
        self.cancel = request
        self._wake_waits()
        if self._interrupt is not None:
            self._interrupt.set()

    @property
    def committing_cancel(self) -> bool:
        """Whether a cancel request is being committed right now."""
        return self._committing is not None

    async def cancel_settled(self) -> CancelRequest | None:
        """Wait until no cancel is being committed; the accepted cancel, if any."""
        while self._committing is not None:
            await self._committing.wait()
        return self.cancel

    async def finish(self) -> CancelRequest | None:
        """The body has ended: decide between its outcome and a cancel, once.

        Returns the accepted cancel, if one was (the instance then ends cancelled);
        otherwise the actor is ``finishing`` from here on and refuses cancels. A
        cancel being committed is waited for: it decides first.
        """
        while True:
            if self.cancel is not None:
                return self.cancel
            committing = self._committing
            if committing is None:
                self.finishing = True  # no await since the check: nothing slips between
                return None
            await committing.wait()

    # -- what the body does -----------------------------------------------------------

    def enter_wait(self) -> Signal:
        """A wait begins; the returned signal is set when it should look again."""
        event = Signal()
        if self._wakes is None:
            self._wakes = set()
        self._wakes.add(event)
        self.waiting += 1
        self._changed()
        return event

    def leave_wait(self, event: Signal) -> None:
        if self._wakes is not None:
            self._wakes.discard(event)
        self.waiting -= 1
        self._changed()

    async def blocked_until(self, event: Signal, deadline: float | None) -> None:
        """Block a wait until it is woken or its deadline (the node's clock) comes."""
        timer = (None if deadline is None
                 else self._clock.call_at(deadline, lambda: self.post(TimerDue())))
        self.blocked += 1
        self._changed()
        try:
            await event.wait()
        finally:
            if timer is not None:
                timer.cancel()
            self.blocked -= 1
            self._changed()

    def begin_work(self) -> None:
        """An activity runs: the actor stays resident."""
        self.busy += 1
        self._changed()

    def end_work(self) -> None:
        self.busy -= 1
        self._changed()
        if self.busy == 0 and self._quiet is not None:
            self._quiet.set()
            self._quiet = None

    # -- handing over -------------------------------------------------------------------

    def hold(self) -> None:
        """The instance is about to move to another node: from now on no activity
        starts here (`held_back` blocks it until the actor stops)."""
        self.held = True

    async def held_back(self) -> None:
        """Block an activity that would start on a held actor, until it is stopped."""
        await asyncio.get_running_loop().create_future()

    async def pause(self, seconds: float, *, nested: bool = False) -> None:
        """Sleep between an activity's attempts; a cancel or (unless the activity was
        called by another one) the end of the body cuts it short (the caller then
        looks at why)."""
        if self.cancel is not None or (self.body_ended and not nested):
            return
        if self._interrupt is None:
            self._interrupt = asyncio.Event()
        if nested and self.body_ended:  # only a cancel cuts it short now
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._interrupt.wait(), seconds)

    async def end_body(self) -> None:
        """The body has returned or raised. Its branches still running (the other
        steps of a ``gather``) start no new step: their waits let go, their
        activities make no new attempt, and a cancel is refused (the body's outcome
        decides). Returns once the activities that were running have finished and
        their entries are queued, and the journal is sealed for everyone but the
        caller, so that the outcome and the compensations come after every step
        the body took, and nothing after them.

        Raises:
            WriteLost, ActorStopped: If a step that finished meanwhile lost its
                journal write: the actor restarts and replays, as for the body's own.
        """
        self.body_ended = True
        self._wake_waits()
        if self._interrupt is not None:
            self._interrupt.set()
        await self._until_idle()
        await self.journal.seal()
        if self.lost is not None:
            raise self.lost

    async def _until_idle(self) -> None:
        while self.busy:  # one event per quiet spell, shared by everyone waiting for it
            if self._quiet is None:
                self._quiet = asyncio.Event()
            await self._quiet.wait()

    async def until_quiet(self) -> None:
        """Wait until no activity runs, and what they journaled is committed."""
        await self._until_idle()
        await self.journal.settled()

    @property
    def idle(self) -> bool:
        """Every pending operation is a wait blocked on its wake-up."""
        return self.waiting > 0 and self.blocked == self.waiting and self.busy == 0

    def _changed(self) -> None:
        if self.waiting > 0:
            self._on_suspended(self.instance_id)
        self._stop_idle_timer()
        if self.idle and self._idle_seconds >= 0 and not self.leaving:
            self._idle_timer = self._clock.call_at(self._clock.now() + self._idle_seconds,
                                                   lambda: self.post(Passivate()))

    def _stop_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # -- passivation ------------------------------------------------------------------

    async def _passivate(self) -> None:
        """Give the instance up if it is still idle, and leave memory."""
        if not self.idle:
            return
        try:
            released = await self._stores.leases.release(self.instance_id, self._node_id,
                                                          self.journal.epoch)
        except Exception:
            # Staying resident is always safe; the sweep covers a missed wake-up.
            log.warning("passivating %s failed", self.instance_id, exc_info=True)
            return
        if not released.released:
            return
        if released.pending:  # something for one of its waits arrived meanwhile
            self.missed = True
        self._depart("passivated")
