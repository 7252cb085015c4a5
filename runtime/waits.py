"""Durable waits: the primitive behind `sleep` and `wait_event`, and passivation.

A wait journals `WaitStarted` (with a wait row, so other nodes can find it) and
then awaits in memory: each pending wait has its own wake-up event, set when
the node hears that something arrived for the instance, and its own deadline.
What ends the wait is journaled in the same transaction that deletes the wait
row (and, for an event, records the delivery), so a replay returns exactly the
same outcome. Suspension never travels as an exception through user code.

An actor whose pending operations have all been waits for ``idle_seconds`` is
**passivated**: it gives its instance up (no owner, no lease) and leaves memory.
The timer service or a wake-up claims it again and replays it to the wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edda.journal.entries import (
    TimerFired,
    WaitStarted,
    WaitTimedOut,
)
from edda.journal.group_commit import InstanceChange
from edda.journal.waits import AddWait, EndWait

if TYPE_CHECKING:
    from edda.actors.background import Background
    from edda.journal.cancel import CancelRequest
    from edda.journal.clock import Clock, TimerHandle
    from edda.journal.entries import CallEntry
    from edda.journal.stores import LeaseStore
    from edda.journal.writes import Effect
    from edda.runtime.context import WorkflowContext
    from edda.runtime.replay import InstanceRun

log = logging.getLogger("edda.waits")

@dataclass(frozen=True, slots=True)
class Delivery:
    """Something a wait can take: the entry that records it, and what else its
    transaction must change (mark an event delivered, consume a message)."""

    make_entry: Callable[[str, int], CallEntry]
    effects: tuple[Effect, ...] = ()


Poll = Callable[[], Awaitable[Delivery | None]]
#: Find something and journal it in one transaction: (position, call, waiting) -> entry.
Take = Callable[[str, int, bool], Awaitable["CallEntry | None"]]


async def durable_wait(
    ctx: WorkflowContext,
    position: str,
    call: int,
    *,
    operation: str,
    wait_type: str,
    key: str | None,
    deadline: Callable[[float], float | None],
    status: str,
    poll: Poll | None = None,
    take: Take | None = None,
) -> tuple[CallEntry, bool]:
    """Wait durably; returns the entry that ended the wait and whether it is new
    (False when it was replayed from the journal).

    ``deadline`` (given the clock's time now) is evaluated only when the wait
    first starts (it is then journaled); ``poll`` looks for a deliverable event.
    The deadline is kept by the node's clock (`EddaApp.clock`).
    """
    run = ctx._run
    entries = ctx._recorded(position, call, operation)
    if entries is not None and not isinstance(entries[-1], WaitStarted):
        return entries[-1], False
    actor = run.actor
    if entries is not None:
        started = entries[-1]
        assert isinstance(started, WaitStarted)
        until = started.deadline
    else:
        # Something may be there already: take it without journaling a wait.
        taken = await _attempt(run, position, call, take, poll, waiting=False)
        if taken is not None:
            return taken, True
        until = deadline(run.clock.now())
        await actor.append(
            WaitStarted(position=position, call=call, operation=operation, wait_type=wait_type,
                        key=key, deadline=until),
            InstanceChange(status=status, current_activity_id=position),
            effects=(AddWait(actor.instance_id, position, wait_type, key, until),),
        )
    wake = asyncio.Event()
    run.wakes.add(wake)
    run.waiting += 1
    run.host.waiting_changed(run)
    try:
        while True:
            wake.clear()
            if run.cancel is not None:
                from edda.runtime.saga import cancelled_error

                raise cancelled_error(actor.instance_id, run.cancel.by)
            taken = await _attempt(run, position, call, take, poll, waiting=True)
            if taken is not None:
                return taken, True
            now = run.clock.now()
            if until is not None and now >= until:
                done: CallEntry = (TimerFired(position=position, call=call) if wait_type == "timer"
                                   else WaitTimedOut(position=position, call=call))
                await _resolve(run, done, position)
                return done, True
            # The deadline wakes the wait like an arrival does; the loop then sees it passed.
            timer = None if until is None else run.clock.call_at(until, wake.set)
            # Only a wait blocked here (not polling, not resolving) may be passivated.
            run.blocked += 1
            run.host.waiting_changed(run)
            try:
                await wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()
                run.blocked -= 1
                run.host.waiting_changed(run)
    finally:
        run.wakes.discard(wake)
        run.waiting -= 1
        run.host.waiting_changed(run)


async def _attempt(run: InstanceRun, position: str, call: int, take: Take | None,
                   poll: Poll | None, *, waiting: bool) -> CallEntry | None:
    """Take what is there, if anything, and journal it (ending the wait if one is on)."""
    if take is not None:
        return await take(position, call, waiting)
    if poll is None:
        return None
    await run.actor.settled()  # the poll must see what this run has journaled
    found = await poll()
    if found is None:
        return None
    entry = found.make_entry(position, call)
    await _resolve(run, entry, position, found.effects, waiting=waiting)
    return entry


def resolution(
    run: InstanceRun, position: str, effects: tuple[Effect, ...], *, waiting: bool,
) -> tuple[InstanceChange | None, tuple[Effect, ...]]:
    """What journaling a wait's outcome changes besides its entry: with a wait on,
    its row goes and the instance runs again (unless another of its waits is pending)."""
    if not waiting:
        return None, effects
    return (InstanceChange(status="running" if run.waiting <= 1 else None),
            (EndWait(run.actor.instance_id, position), *effects))


async def _resolve(run: InstanceRun, entry: CallEntry, position: str,
                   effects: tuple[Effect, ...] = (), *, waiting: bool = True) -> None:
    change, effects = resolution(run, position, effects, waiting=waiting)
    # Not waited for: the workflow computes on while it commits (see WorkflowActor.submit).
    run.actor.submit(entry, change, effects=effects)


def _idle(run: InstanceRun) -> bool:
    """Every pending operation of the run is a wait blocked on its wake-up."""
    return run.waiting > 0 and run.blocked == run.waiting and run.busy == 0


class Waits:
    """The node's resident runs: wake-ups, first-suspension notice, passivation."""

    def __init__(
        self,
        leases: Callable[[], LeaseStore],
        node_id: str,
        clock: Clock,
        *,
        idle_seconds: float,
        on_suspended: Callable[[str], None],
        stop_actor: Callable[[str], Awaitable[None]],
        after_passivation: Callable[[str, bool], Awaitable[None]],
        notify: Callable[[str], Awaitable[None]],
        background: Background,
    ) -> None:
        self._leases = leases
        self._node_id = node_id
        self._clock = clock
        self.idle_seconds = idle_seconds
        self._on_suspended = on_suspended
        self._stop_actor = stop_actor
        self._after_passivation = after_passivation
        self._notify = notify
        self.runs: dict[str, InstanceRun] = {}
        #: Cancels committed for instances whose run has not attached yet.
        self.cancels: dict[str, CancelRequest] = {}
        self._idle: dict[str, TimerHandle] = {}
        self._background = background
        self.passivated = 0
        #: Told when an outbox row was committed (the app's relayer, if any).
        self.on_outbox: Callable[[], None] | None = None

    def attach(self, run: InstanceRun) -> None:
        instance_id = run.actor.instance_id
        self.runs[instance_id] = run
        request = self.cancels.pop(instance_id, None)
        if request is not None and run.cancel is None:
            run.cancel = request

    def cancel(self, instance_id: str, request: CancelRequest) -> bool:
        """Hand a committed cancel to the instance's run: at once if resident, else
        when it attaches. False if the run is already finishing (too late)."""
        run = self.runs.get(instance_id)
        if run is None:
            self.cancels[instance_id] = request
            return True
        if run.finishing:
            return False
        if run.cancel is None:
            run.cancel = request
        self.wake(instance_id)
        return True

    def detach(self, run: InstanceRun) -> None:
        instance_id = run.actor.instance_id
        if self.runs.get(instance_id) is run:
            del self.runs[instance_id]
        self.cancels.pop(instance_id, None)
        handle = self._idle.pop(instance_id, None)
        if handle is not None:
            handle.cancel()

    async def notify(self, instance_id: str) -> None:
        """Wake an instance wherever it is (resident here, passivated, elsewhere)."""
        await self._notify(instance_id)

    def outbox_written(self) -> None:
        """An activity committed outbox rows: wake the relayer, if there is one."""
        if self.on_outbox is not None:
            self.on_outbox()

    def wake(self, instance_id: str) -> bool:
        """Tell a resident instance that something arrived; False if it is not resident."""
        run = self.runs.get(instance_id)
        if run is None:
            return False
        for event in run.wakes:
            event.set()
        return True

    def waiting_changed(self, run: InstanceRun) -> None:
        """Called when a wait starts or ends, or an activity starts or ends."""
        instance_id = run.actor.instance_id
        if run.waiting > 0:
            self._on_suspended(instance_id)
        handle = self._idle.pop(instance_id, None)
        if handle is not None:
            handle.cancel()
        if _idle(run) and self.idle_seconds >= 0:
            self._idle[instance_id] = self._clock.call_at(
                self._clock.now() + self.idle_seconds, lambda: self.spawn(self._passivate(run)))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run node work in the background (the node's background service)."""
        self._background.spawn(coroutine)

    def close(self) -> None:
        """Stop scheduling passivations (the node is stopping)."""
        for handle in self._idle.values():
            handle.cancel()
        self._idle.clear()

    async def _passivate(self, run: InstanceRun) -> None:
        instance_id = run.actor.instance_id
        self._idle.pop(instance_id, None)
        if self.runs.get(instance_id) is not run or not _idle(run):
            return
        try:
            outcome = await self._leases().release(instance_id, self._node_id, run.actor.epoch)
            if not outcome.released:
                return
            await self._stop_actor(instance_id)
            self.passivated += 1
            await self._after_passivation(instance_id, outcome.pending)
        except Exception:
            # Staying resident is always safe; the sweep covers a missed wake-up.
            log.warning("passivating %s failed", instance_id, exc_info=True)
