"""The workflow actor: one instance, rebuilt from its journal, appending to it.

The actor knows nothing of user code; the runtime gives it a behaviour to run.
It owns the replayed records, the next sequence number and the fencing epoch
under which every append is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edda.journal.codec import encode_entry
from edda.journal.entries import TERMINAL_KINDS, Entry, kind_of
from edda.journal.errors import FencedError
from edda.journal.group_commit import Append, GroupCommitWriter, InstanceChange, Taken

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection

    from edda.journal.store import Record


class ActorStopped(BaseException):
    """The actor lost its instance to another node and must stop at once.

    A `BaseException`, so that ``except Exception`` in user code cannot swallow it.
    """


class WorkflowActor:
    """A resident workflow instance and its journal."""

    def __init__(
        self,
        instance_id: str,
        workflow_name: str,
        epoch: int,
        records: list[Record],
        writer: GroupCommitWriter,
        *,
        next_seq: int | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.epoch = epoch
        self.records = records
        self._writer = writer
        if next_seq is None:
            next_seq = records[-1].seq + 1 if records else 0
        self.next_seq = next_seq

    @property
    def finished(self) -> bool:
        """Whether the journal already ends the instance."""
        return any(kind_of(r.entry) in TERMINAL_KINDS for r in self.records)

    async def take(
        self,
        find: Callable[[Connection], tuple[Entry, InstanceChange | None,
                                           Callable[[Connection], None] | None] | None],
    ) -> Entry | None:
        """Find something and journal it in one transaction; None if nothing was found.

        Raises:
            ActorStopped: If this node was fenced off the instance.
        """
        seq = self.next_seq
        self.next_seq += 1  # unused (a gap) when nothing is found; seqs only order entries

        def take(conn: Connection) -> Taken | None:
            found = find(conn)
            if found is None:
                return None
            entry, change, effects = found
            return Taken(kind_of(entry), encode_entry(entry), change, effects, entry)

        try:
            taken = await self._writer.take_and_append(self.instance_id, seq, self.epoch, take)
        except FencedError as exc:
            raise ActorStopped(str(exc)) from exc
        return None if taken is None else taken.entry

    async def append(
        self,
        entry: Entry,
        change: InstanceChange | None = None,
        *,
        effects: Callable[[Connection], None] | None = None,
    ) -> None:
        """Append an entry (and its side-table effects) and wait until it is committed.

        Raises:
            ActorStopped: If this node was fenced off the instance.
        """
        seq = self.next_seq
        self.next_seq += 1
        op = Append(self.instance_id, seq, self.epoch, kind_of(entry), encode_entry(entry), change,
                    effects=effects)
        try:
            await self._writer.append(op)
        except FencedError as exc:
            raise ActorStopped(str(exc)) from exc
