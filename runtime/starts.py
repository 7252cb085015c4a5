"""Creating instances: new ids in this node's partitions, and ids callers choose.

A new instance is created in one of the node's own partitions whenever it holds
one, so that the node that starts it runs it, without a round trip. A caller may
choose the id instead (``wf.start(instance_id="order-42")``): the id is then an
address known before the instance exists, and starting it again returns the
same instance rather than creating a second one. Such an instance runs on the
node that owns its id's partition, wherever it was started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edda.journal.appends import Append
from edda.journal.codec import encode_json
from edda.journal.entries import WorkflowStarted
from edda.journal.errors import JournalConflictError
from edda.journal.records import Record
from edda.runtime.hooks import fire
from edda.runtime.limits import check_key

if TYPE_CHECKING:
    from edda.journal.writes import Effect
    from edda.runtime.app import EddaApp
    from edda.runtime.workflow import Workflow


def check_instance_id(instance_id: object) -> str:
    """A caller-chosen instance id, checked.

    Raises:
        ValueError: If it is not a non-empty string of at most 255 characters
            without dots, whitespace or control characters (such as NUL).
    """
    if (not isinstance(instance_id, str) or not instance_id or len(instance_id) > 255
            or "." in instance_id or any(c.isspace() for c in instance_id)):
        raise ValueError(f"instance_id {instance_id!r} must be a non-empty string of at most "
                         "255 characters without dots or whitespace, such as 'order-42'")
    return check_key(instance_id, "instance_id")  # what every key must be


def _row(app: EddaApp, wf: Workflow[..., Any], instance_id: str, stored: dict[str, Any],
         partition: int, epoch: int, now: float) -> dict[str, Any]:
    return {
        "instance_id": instance_id, "workflow_name": wf.name, "status": "running",
        "input": encode_json(stored), "source_hash": wf.source_hash,
        "owner_service": app.service_name, "partition": partition, "epoch": epoch,
        "owner_node": app.worker_id if epoch else None, "started_at": now, "updated_at": now,
    }


async def create(app: EddaApp, wf: Workflow[..., Any], instance_id: str,
                 stored: dict[str, Any], partition: int, epoch: int,
                 effects: tuple[Effect, ...] = ()) -> None:
    """Commit a new instance (with ``effects`` in its transaction) and run it: here,
    in one of this node's partitions at ``epoch``, or (epoch 0) on the node that
    owns ``partition``."""
    writer, runner = app._writer, app._runner
    assert writer is not None
    now = app.clock.now()
    row = _row(app, wf, instance_id, stored, partition, epoch, now)
    entry = WorkflowStarted(workflow_name=wf.name, input=stored)
    # The instance's first entry commits with its first step: nothing has been
    # acknowledged yet, and the writer keeps the order of appends.
    created = writer.append(Append.of(instance_id, 0, epoch, entry, create=row, effects=effects))
    await fire(app.hooks, "on_workflow_start", instance_id, wf.name, stored)
    if not epoch:
        try:
            await created
        except BaseException:
            runner.waiters.forget(instance_id)
            raise
        await runner.wake(instance_id)
        return
    runner.activate(instance_id, wf.name, epoch, [Record(0, entry, now)], created)
    try:
        await created
    except BaseException:
        runner.waiters.forget(instance_id)
        await app.supervisor.stop(instance_id)
        raise


async def create_named(app: EddaApp, wf: Workflow[..., Any], instance_id: str,
                       stored: dict[str, Any]) -> bool:
    """Create ``instance_id`` unless it exists; True if this call created it.

    Raises:
        ValueError: If the id belongs to an instance of another workflow.
    """
    store = app.stores.journal
    if await _existing(app, wf, instance_id):
        return False
    placement, runner, writer = app._placement(), app._runner, app._writer
    assert writer is not None
    partition = placement.partition(instance_id)
    epoch = placement.epoch_of(instance_id) or 0
    now = app.clock.now()
    entry = WorkflowStarted(workflow_name=wf.name, input=stored)
    try:
        await writer.append(Append.of(
            instance_id, 0, epoch, entry,
            create=_row(app, wf, instance_id, stored, partition, epoch, now)))
    except JournalConflictError:  # started by someone else just now
        if await store.row(instance_id) is not None and await _existing(app, wf, instance_id):
            return False
        raise
    await fire(app.hooks, "on_workflow_start", instance_id, wf.name, stored)
    if epoch:
        runner.activate(instance_id, wf.name, epoch, [Record(0, entry, now)])
    else:
        await runner.wake(instance_id)
    return True


async def _existing(app: EddaApp, wf: Workflow[..., Any], instance_id: str) -> bool:
    row = await app.stores.journal.row(instance_id)
    if row is None:
        return False
    if row["workflow_name"] != wf.name:
        raise ValueError(f"instance_id {instance_id!r} is already an instance of workflow "
                         f"{row['workflow_name']!r}, not {wf.name!r}; choose another id")
    return True
