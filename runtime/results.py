"""Whoever waits on an instance: ``start()`` callers and `EddaApp.wait_result`.

A caller waits on a future that the node settles when the instance ends here
(or, for ``start()``, first waits), so nothing polls on the hot path. The stored
row is read once first (the instance may have ended already, or elsewhere) and
again, as a safety net, every ``recheck`` seconds. While no actor of this node
runs the instance (it runs on another node, or its partition moved there) the
row is read soon and then less and less often, up to ``recheck``: that is how an
instance run by another process is followed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from edda.journal.codec import decode_json
from edda.journal.entries import WorkflowCancelled, WorkflowFailed, WorkflowRecurred
from edda.runtime.saga import Outcome, cancelled_error
from edda.runtime.serialization import rebuild_error, restore, type_hints

if TYPE_CHECKING:
    from collections.abc import Callable

    from edda.journal.stores import JournalStore
    from edda.runtime.context import Recurred
    from edda.runtime.registry import Registry

_ENDED = ("completed", "failed", "cancelled", "recurred")

#: What a waiting caller is told when the instance's actor left this node without
#: an outcome (its partition moved, it was fenced, it passivated): look again.
MOVED = Outcome()


class Waiters:
    """The futures of a node's callers, by instance."""

    def __init__(self) -> None:
        self._starts: dict[str, asyncio.Future[Outcome]] = {}
        self._results: dict[str, set[asyncio.Future[Outcome]]] = {}
        #: For start() callers: the instance a recurring one continued as.
        self.final_ids: dict[str, str] = {}

    def expect(self, instance_id: str) -> asyncio.Future[Outcome]:
        """A future told how the instance ends, or that it first waits (``start()``)."""
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._starts[instance_id] = waiter
        return waiter

    def forget(self, instance_id: str) -> None:
        self._starts.pop(instance_id, None)

    def settle(self, instance_id: str, outcome: Outcome) -> None:
        """Tell the ``start()`` caller, if any."""
        waiter = self._starts.pop(instance_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def suspended(self, instance_id: str) -> None:
        """The instance started waiting: ``start()`` returns, as in Edda."""
        if instance_id in self._starts:
            self.settle(instance_id, Outcome(suspended=True))

    def watch(self, instance_id: str) -> asyncio.Future[Outcome]:
        """A future told how the instance ends, if it ends on this node."""
        watcher: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._results.setdefault(instance_id, set()).add(watcher)
        return watcher

    def unwatch(self, instance_id: str, watcher: asyncio.Future[Outcome]) -> None:
        watchers = self._results.get(instance_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._results[instance_id]

    def ended(self, instance_id: str, outcome: Outcome) -> None:
        """The instance ended on this node: tell whoever waits for it."""
        self.settle(instance_id, outcome)
        for watcher in self._results.pop(instance_id, ()):
            if not watcher.done():
                watcher.set_result(outcome)

    def left(self, instance_id: str) -> None:
        """The instance's actor left this node without an outcome: whoever waits
        looks at the stored row again (and follows it wherever it runs now)."""
        waiter = self._starts.get(instance_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(MOVED)
        for watcher in self._results.pop(instance_id, ()):
            if not watcher.done():
                watcher.set_result(MOVED)

    def continued(self, instance_id: str, recurred: Recurred) -> None:
        """The instance continued as a new one: its ``start()`` caller waits on that."""
        new_id = recurred.new_instance_id
        waiter = self._starts.pop(instance_id, None)
        if waiter is not None:
            self._starts[new_id] = waiter
            self.final_ids[instance_id] = new_id
        for watcher in self._results.pop(instance_id, ()):
            if not watcher.done():
                watcher.set_result(Outcome(recurred=recurred))

    def fail_all(self, message: str, error: BaseException | None = None) -> None:
        """Tell every caller still waiting that their instance will not finish here."""
        for waiter in [*self._starts.values(),
                       *(w for ws in self._results.values() for w in ws)]:
            if not waiter.done():
                waiter.set_exception(error if isinstance(error, Exception)
                                     else RuntimeError(message))
        self._starts.clear()
        self._results.clear()


async def stored_outcome(store: JournalStore, registry: Registry, instance_id: str
                         ) -> Outcome | str | None:
    """How a stored instance ended: its outcome, the id it recurred as, or None
    while it has not ended.

    Raises:
        LookupError: If there is no such instance.
    """
    row = await store.row(instance_id)
    if row is None:
        raise LookupError(f"no workflow instance {instance_id!r}")
    if row["status"] not in _ENDED:
        return None
    if row["status"] == "completed":
        output = decode_json(row["output"]) if row["output"] else {}
        result = output.get("result") if isinstance(output, dict) else None
        wf = registry.workflow(row["workflow_name"])
        if wf is not None:
            result = restore(result, type_hints(wf.func).get("return"))
        return Outcome(result=result)
    record = await store.last_record(instance_id)
    entry = None if record is None else record.entry
    match entry:
        case WorkflowRecurred():
            return entry.new_instance_id
        case WorkflowFailed():
            return Outcome(error=rebuild_error(entry.error))
        case WorkflowCancelled():
            return Outcome(error=cancelled_error(instance_id, entry.cancelled_by))
    raise RuntimeError(f"instance {instance_id!r} is {row['status']} but its journal does "
                       "not end with it")


#: How often a caller re-reads an instance that runs on another node: first soon,
#: then less often, up to the caller's ``recheck``.
_POLL_FIRST = 0.02


async def _pause(future: asyncio.Future[Outcome], local: bool, poll: float,
                 recheck: float) -> float:
    """Wait for ``future``: up to ``recheck`` while an actor of this node runs the
    instance (it tells the future), else up to ``poll``. Returns the next poll
    interval: reset while local, doubled (up to ``recheck``) while elsewhere."""
    if local:
        await asyncio.wait({future}, timeout=recheck)
        return _POLL_FIRST
    await asyncio.wait({future}, timeout=poll)
    return min(poll * 2, recheck)


async def first_stop(waiters: Waiters, waiter: asyncio.Future[Outcome], store: JournalStore,
                     registry: Registry, instance_id: str, *, recheck: float,
                     is_local: Callable[[str], bool], read_first: bool = False) -> Outcome:
    """What ``start()`` returns on: the instance ended or first waits, here (``waiter``
    is told) or on whichever node runs it (its stored row says so; read soon and
    then less often while no actor of this node runs it)."""
    poll = _POLL_FIRST
    while True:
        if read_first:  # it may have stopped already (a start of an existing id)
            read_first = False
        else:
            poll = await _pause(waiter, is_local(instance_id), poll, recheck)
        if waiter.done():
            if waiter.result() is not MOVED:
                return waiter.result()
            waiter = waiters.expect(instance_id)
        row = await store.row(instance_id)
        if row is None or row["status"] in ("running", "compensating"):
            continue
        found = await stored_outcome(store, registry, instance_id)
        if found is None:
            found = Outcome(suspended=True)
        if isinstance(found, str):  # recurred elsewhere: wait on the instance it became
            waiters.final_ids[instance_id] = found
            waiters.forget(instance_id)
            instance_id, waiter = found, waiters.expect(found)
            continue
        waiters.forget(instance_id)
        return found


async def _outcome(waiters: Waiters, store: JournalStore, registry: Registry,
                   instance_id: str, recheck: float,
                   is_local: Callable[[str], bool]) -> Outcome | str:
    """The outcome of one instance (or the id it recurred as), once it has ended."""
    poll = _POLL_FIRST
    while True:
        watcher = waiters.watch(instance_id)  # before the read: an end in between is seen
        try:
            found = await stored_outcome(store, registry, instance_id)
            if found is not None:
                return found
            poll = await _pause(watcher, is_local(instance_id), poll, recheck)
            if watcher.done() and watcher.result() is not MOVED:
                outcome = watcher.result()
                recurred = outcome.recurred
                return outcome if recurred is None else recurred.new_instance_id
        finally:
            waiters.unwatch(instance_id, watcher)


async def wait_result(waiters: Waiters, store: JournalStore, registry: Registry,
                      instance_id: str, *, recheck: float,
                      is_local: Callable[[str], bool]) -> Any:
    """The instance's result once it ends (following ``recur`` to the newest
    instance), or its failure raised."""
    current = instance_id
    while True:
        outcome = await _outcome(waiters, store, registry, current, recheck, is_local)
        if isinstance(outcome, str):
            current = outcome
            continue
        if outcome.error is not None:
            raise outcome.error
        return outcome.result
