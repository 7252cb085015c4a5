"""Awaiting an instance's result: `EddaApp.wait_result`.

A caller waits on a future that the node settles when the instance ends here,
so nothing polls on the hot path. The stored row is read once first (the
instance may have ended already, or elsewhere) and again, as a safety net, every
``recheck`` seconds, which is how an instance finished by another process is
noticed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from edda.journal.codec import decode_json
from edda.journal.entries import WorkflowCancelled, WorkflowFailed, WorkflowRecurred
from edda.runtime.saga import Outcome, cancelled_error
from edda.runtime.serialization import rebuild_error, restore, type_hints

if TYPE_CHECKING:
    from edda.journal.stores import JournalStore
    from edda.runtime.instances import InstanceRunner
    from edda.runtime.registry import Registry

_ENDED = ("completed", "failed", "cancelled", "recurred")


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


async def _outcome(runner: InstanceRunner, store: JournalStore, registry: Registry,
                   instance_id: str, recheck: float) -> Outcome | str:
    """The outcome of one instance (or the id it recurred as), once it has ended."""
    watcher = runner.watch(instance_id)  # before the read: an end in between is not missed
    try:
        while True:
            found = await stored_outcome(store, registry, instance_id)
            if found is not None:
                return found
            done, _ = await asyncio.wait({watcher}, timeout=recheck)
            if done:
                outcome = watcher.result()
                recurred = outcome.recurred
                return outcome if recurred is None else recurred.new_instance_id
    finally:
        runner.unwatch(instance_id, watcher)


async def wait_result(runner: InstanceRunner, store: JournalStore, registry: Registry,
                      instance_id: str, *, recheck: float) -> Any:
    """The instance's result once it ends (following ``recur`` to the newest
    instance), or its failure raised."""
    current = instance_id
    while True:
        outcome = await _outcome(runner, store, registry, current, recheck)
        if isinstance(outcome, str):
            current = outcome
            continue
        if outcome.error is not None:
            raise outcome.error
        return outcome.result
