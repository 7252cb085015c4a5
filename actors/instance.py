"""The instance actor: one resident workflow instance, its run state and its mailbox.

A resident instance is one `InstanceActor`. Its task handles the mailbox; the
workflow's own code runs in a child task (the *body*, supplied by the runtime).
The actor owns the instance's run state: the cancel it accepted, whether it is
finishing or compensating, how many of its operations wait and how many are
blocked, its idle timer. Other tasks never change that state; they post
messages (`edda.actors.mailbox`), which the actor handles one at a time:

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
import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from edda.actors.mailbox import (
    BodyEnded,
    Cancel,
    Mailbox,
    Message,
    Passivate,
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


class Ended(Generic[T]):
    """What `InstanceActor.run` returns when the body finished: its value."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


class InstanceActor:
    """A resident workflow instance."""

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
        #: Set while a cancel request is being committed (durable calls wait for it).
        self._cancel_settled = asyncio.Event()
        self._cancel_settled.set()
        #: The body has ended and its outcome is being journaled: too late to cancel.
        self.finishing = False
        #: Compensations are running: durable calls are not allowed, cancels neither.
        self.compensating = False
        self.waiting = 0
        self.blocked = 0
        self.busy = 0
        self._wakes: set[asyncio.Event] = set()
        self._idle_timer: TimerHandle | None = None
        #: True once the actor has decided to leave memory.
        self.leaving = False
        #: Something arrived while it was leaving: wake the instance again once it left.
        self.missed = False

    # -- the mailbox ----------------------------------------------------------------

    def post(self, message: Message) -> bool:
        """Hand the actor a message; False if it is leaving (then only noted)."""
        if self.leaving:
            self._unhandled(message)
            return False
        self.mailbox.post(message)
        return True

    async def run(self, body: Callable[[], Coroutine[Any, Any, T]]) -> Ended[T] | Departed:
        """Run the body and handle the mailbox until the body ends or the actor leaves.

        Raises:
            Exception: What the body raised (the supervisor decides what follows).
        """
        task = asyncio.get_running_loop().create_task(body())
        task.add_done_callback(lambda _: self.mailbox.post(BodyEnded()))
        try:
            while True:
                message = await self.mailbox.get()
                match message:
                    case Wake() | TimerDue():
                        self._wake_waits()
                    case Cancel():
                        await self._cancel(message)
                    case Passivate():
                        if await self._passivate():
                            return Departed("passivated")
                    case Stop():
                        return Departed("stopped")
                    case BodyEnded():
                        return Ended(task.result())
        finally:
            self.leaving = True
            self._stop_idle_timer()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
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
        for event in self._wakes:
            event.set()

    # -- cancel ---------------------------------------------------------------------

    async def _cancel(self, message: Cancel) -> None:
        if message.committed is not None:  # stored elsewhere; an activation may have missed it
            if self.cancel is None and not self.finishing:
                self._accept(message.committed)
            return
        reply = message.reply
        assert reply is not None
        from edda.journal.cancel import CancelOutcome

        if self.finishing or self.compensating:
            reply.set_result(CancelOutcome(False, f"instance {self.instance_id!r} cannot be "
                                                  "cancelled: it is already ending"))
            return
        if self.cancel is not None:
            reply.set_result(CancelOutcome(False, "a cancel was already requested by "
                                                  f"{self.cancel.by!r}", self._node_id,
                                           self.cancel))
            return
        self._cancel_settled.clear()  # no durable call starts while this commits
        try:
            outcome = await self._stores.journal.request_cancel(self.instance_id, message.by,
                                                                message.at)
        except Exception as exc:
            if not reply.done():
                reply.set_exception(exc)
            return
        finally:
            self._cancel_settled.set()
        if outcome.accepted:
            assert outcome.request is not None
            self._accept(outcome.request)
        if not reply.done():
            reply.set_result(outcome)

    def _accept(self, request: CancelRequest) -> None:
        self.cancel = request
        self._wake_waits()

    async def cancel_settled(self) -> CancelRequest | None:
        """Wait until no cancel is being committed; the accepted cancel, if any."""
        await self._cancel_settled.wait()
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
            if self._cancel_settled.is_set():
                self.finishing = True  # no await since the check: nothing slips between
                return None
            await self._cancel_settled.wait()

    # -- what the body does -----------------------------------------------------------

    def enter_wait(self) -> asyncio.Event:
        """A wait begins; the returned event is set when it should look again."""
        event = asyncio.Event()
        self._wakes.add(event)
        self.waiting += 1
        self._changed()
        return event

    def leave_wait(self, event: asyncio.Event) -> None:
        self._wakes.discard(event)
        self.waiting -= 1
        self._changed()

    async def blocked_until(self, event: asyncio.Event, deadline: float | None) -> None:
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

    async def _passivate(self) -> bool:
        """Give the instance up if it is still idle; True if the actor must leave."""
        if not self.idle:
            return False
        try:
            released = await self._stores.leases.release(self.instance_id, self._node_id,
                                                          self.journal.epoch)
        except Exception:
            # Staying resident is always safe; the sweep covers a missed wake-up.
            log.warning("passivating %s failed", self.instance_id, exc_info=True)
            return False
        if not released.released:
            return False
        if released.pending:  # something for one of its waits arrived meanwhile
            self.missed = True
        self.leaving = True
        return True
