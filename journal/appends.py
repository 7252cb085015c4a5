"""What an actor journals: an `Append` (one entry, its projection change and effects)
or a `Take` (find something and journal it in the same transaction).

These are the values the group-commit writer (`edda.journal.group_commit`) takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edda.journal.codec import encode_entry
from edda.journal.entries import Entry, kind_of
from edda.journal.writes import Write

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from edda.journal.writes import Effect, WriteContext


@dataclass(slots=True)
class InstanceChange:
    """Columns of the instance projection that an append changes (None: unchanged)."""

    status: str | None = None
    current_activity_id: str | None = None
    output: str | None = None


@dataclass(slots=True)
class Append:
    """One journal entry to write, with its effect on the projection.

    ``create`` holds a new instance row; it goes with the entry at seq 0.
    ``effects`` change the side tables (waits, deliveries, messages) in the same
    transaction, and only if the append is not fenced.
    """

    instance_id: str
    seq: int
    epoch: int
    kind: str
    body: bytes
    change: InstanceChange | None = None
    create: dict[str, Any] | None = None
    effects: tuple[Effect, ...] = ()

    @classmethod
    def of(cls, instance_id: str, seq: int, epoch: int, entry: Entry,
           change: InstanceChange | None = None, *, create: dict[str, Any] | None = None,
           effects: tuple[Effect, ...] = ()) -> Append:
        """An append of ``entry``, encoded."""
        return cls(instance_id, seq, epoch, kind_of(entry), encode_entry(entry), change,
                   create, effects)


@dataclass(frozen=True, slots=True)
class Taken:
    """What a `Take` found: the entry to journal, its changes, and a result for the caller."""

    entry: Entry
    change: InstanceChange | None = None
    effects: tuple[Effect, ...] = ()
    result: Any = None


class Take(Write["Taken | None"], frozen=True, kw_only=True):
    """Find something and journal it at ``seq`` in the same transaction (a competing
    message: claim it and record its receipt at once). Nothing is written when
    `find` returns None; the seq is then left unused. The actor that runs it sets
    ``seq`` and ``epoch``."""

    instance_id: str
    seq: int = -1
    epoch: int = -1

    def find(self, conn: Connection, ctx: WriteContext) -> Taken | None:
        raise NotImplementedError

    def apply(self, conn: Connection, ctx: WriteContext) -> Taken | None:
        raise TypeError("a Take is run by the writer, which journals what it finds")
