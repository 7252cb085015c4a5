"""The transport listener: wake-up messages in, activity out.

A wake-up says that the database gained something for an instance (an event,
a message, a timer); a cancel notice, that a cancel of it was committed. Every
process on the database hears both; only the node that owns the instance's
partition acts. A resident instance re-checks what it waits for (or takes the
cancel); one that no actor runs is claimed and replayed, in the background, so that the claims of a broadcast's many waiters share writer
batches. Wake-ups are at-most-once: the recovery sweep finds what a lost one
missed, including while this service restarts after its transport failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edda.actors.address import INSTANCE_PATTERN, instance_of, kind_of
from edda.actors.mailbox import Wake

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from edda.actors.background import Background
    from edda.runtime.instances import InstanceRunner
    from edda.transports.base import Transport


class WakeListener:
    """The node's "transport listener" service."""

    name = "transport listener"

    def __init__(self, transport: Transport, runner: InstanceRunner,
                 background: Background) -> None:
        self._transport = transport
        self._runner = runner
        self._background = background

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Subscribe (ready once subscribed), then serve wake-ups until cancelled."""
        runner = self._runner
        async with self._transport.subscribe(INSTANCE_PATTERN) as subscription:
            task_status.started()
            async for message in subscription:
                instance_id = instance_of(message.subject)
                if kind_of(message.subject) == "cancel":
                    self._background.spawn(runner.cancel_arrived(instance_id),
                                           what=f"the cancel of {instance_id}")
                    continue
                if runner.tell(instance_id, Wake()):
                    continue
                self._background.spawn(runner.activate_idle(instance_id),
                                       what=f"the wake-up of {instance_id}")

    async def drain(self) -> None:
        """Nothing to finish: a wake-up not yet served is found again by the sweep."""
