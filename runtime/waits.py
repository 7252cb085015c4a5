"""Durable waits: the primitive behind `sleep`, `wait_event` and `receive`.

A wait journals `WaitStarted` (with a wait row, so other nodes can find it) and
then blocks in its actor (`InstanceActor.blocked_until`) until a message in the
actor's mailbox says to look again (something arrived, the deadline came, a
cancel was accepted). What ends the wait is journaled in the same transaction
that deletes the wait row (and, for an event, records the delivery), so a
replay returns exactly the same outcome. Suspension never travels as an
exception through user code.

An actor whose pending operations have all been blocked waits for
``idle_seconds`` is **passivated** by the actor itself: it gives its instance up
(no owner, no lease) and leaves memory. The timer service or a wake-up claims
it again and replays it to the wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edda.journal.appends import InstanceChange
from edda.journal.entries import (
    TimerFired,
    WaitStarted,
    WaitTimedOut,
)
from edda.journal.waits import AddWait, EndWait

if TYPE_CHECKING:
    from edda.journal.entries import CallEntry
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
    journal = run.journal
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
        await journal.append(
            WaitStarted(position=position, call=call, operation=operation, wait_type=wait_type,
                        key=key, deadline=until),
            InstanceChange(status=status, current_activity_id=position),
            effects=(AddWait(journal.instance_id, position, wait_type, key, until),),
        )
    actor = run.actor
    wake = actor.enter_wait()
    try:
        while True:
            wake.clear()
            if actor.cancel is not None:
                from edda.runtime.saga import cancelled_error

                raise cancelled_error(journal.instance_id, actor.cancel.by)
            if actor.body_ended:  # a branch left over when the body ended lets go
                raise asyncio.CancelledError
            taken = await _attempt(run, position, call, take, poll, waiting=True)
            if taken is not None:
                return taken, True
            if until is not None and run.clock.now() >= until:
                done: CallEntry = (TimerFired(position=position, call=call) if wait_type == "timer"
                                   else WaitTimedOut(position=position, call=call))
                await _resolve(run, done, position)
                return done, True
            # Only a wait blocked here (not polling, not resolving) lets the actor passivate.
            await actor.blocked_until(wake, until)
    finally:
        actor.leave_wait(wake)


async def _attempt(run: InstanceRun, position: str, call: int, take: Take | None,
                   poll: Poll | None, *, waiting: bool) -> CallEntry | None:
    """Take what is there, if anything, and journal it (ending the wait if one is on)."""
    if take is not None:
        return await take(position, call, waiting)
    if poll is None:
        return None
    await run.journal.settled()  # the poll must see what this run has journaled
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
    return (InstanceChange(status="running" if run.actor.waiting <= 1 else None),
            (EndWait(run.journal.instance_id, position), *effects))


async def _resolve(run: InstanceRun, entry: CallEntry, position: str,
                   effects: tuple[Effect, ...] = (), *, waiting: bool = True) -> None:
    change, effects = resolution(run, position, effects, waiting=waiting)
    # Not waited for: the workflow computes on while it commits (see InstanceJournal.submit).
    run.journal.submit(entry, change, effects=effects)
