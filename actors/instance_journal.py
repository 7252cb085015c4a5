"""An instance's journal as its actor writes it: records, next seq, fencing epoch.

`InstanceJournal` holds the records replayed for a resident instance and makes
every append under the epoch at which this node holds the instance. Appends an
actor does not wait for (`submit`) are ordered and checked (`settled`): nothing
leaves the actor before what it journaled is committed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec

from edda.journal.appends import Append, InstanceChange, Take, Taken
from edda.journal.entries import TERMINAL_KINDS, Entry, kind_of
from edda.journal.errors import EarlierWriteFailed, FencedError
from edda.journal.writes import mark_seen

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy import Connection

    from edda.journal.group_commit import GroupCommitWriter
    from edda.journal.records import Record
    from edda.journal.writes import Effect


class ActorStopped(BaseException):
    """The actor lost its instance to another node and must stop at once.

    A `BaseException`, so that ``except Exception`` in user code cannot swallow it.
    """


class WriteLost(BaseException):
    """A write the actor did not wait for failed: its memory is ahead of its journal.

    The supervisor restarts the actor, which replays from what was committed.
    A `BaseException`, so that user code cannot swallow it.
    """


class InstanceJournal:
    """The journal of one resident instance."""

    __slots__ = ("_only", "_own_commits", "_own_done", "_unsettled", "_writer", "epoch",
                 "instance_id", "next_seq", "records", "workflow_name")

    def __init__(
        self,
        instance_id: str,
        workflow_name: str,
        epoch: int,
        records: list[Record],
        writer: GroupCommitWriter,
        *,
        next_seq: int | None = None,
        unsettled: asyncio.Future[Any] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.workflow_name = workflow_name
        self.epoch = epoch
        self.records = records
        self._writer = writer
        if next_seq is None:
            next_seq = records[-1].seq + 1 if records else 0
        self.next_seq = next_seq
        #: The newest write not yet known to be committed (each refers to the one before).
        self._unsettled: asyncio.Future[Any] | None = unsettled
        #: Once sealed, the one task that may still write (the run's ending).
        self._only: asyncio.Task[Any] | None = None
        #: Appends committing in a transaction of their own right now (`append_in`).
        self._own_commits = 0
        self._own_done: asyncio.Event | None = None

    async def seal(self) -> None:
        """Let only the calling task write from now on (the run's ending: its outcome,
        its compensations). Any other task that tries (a branch of the body left
        over) gets `asyncio.CancelledError` and writes nothing. Returns once the
        appends already committing in transactions of their own have committed;
        everything queued before commits before what is queued after."""
        self._only = asyncio.current_task()
        while self._own_commits:
            if self._own_done is None:
                self._own_done = asyncio.Event()
            await self._own_done.wait()

    def _check_open(self) -> None:
        if self._only is not None and asyncio.current_task() is not self._only:
            raise asyncio.CancelledError

    @property
    def finished(self) -> bool:
        """Whether the journal already ends the instance."""
        return any(kind_of(r.entry) in TERMINAL_KINDS for r in self.records)

    async def take(self, op: Take) -> Taken | None:
        """Find something and journal it in one transaction (``op`` gets this actor's
        next seq and epoch); None if nothing was found.

        Raises:
            ActorStopped: If this node was fenced off the instance.
        """
        self._check_open()
        seq = self.next_seq
        self.next_seq += 1  # unused (a gap) when nothing is found; seqs only order entries
        op = msgspec.structs.replace(op, seq=seq, epoch=self.epoch)
        future = self._writer.submit(op, after=self._unsettled)
        taken: Taken | None = await self._wait(future)
        return taken

    async def append(
        self,
        entry: Entry,
        change: InstanceChange | None = None,
        *,
        effects: tuple[Effect, ...] = (),
    ) -> None:
        """Append an entry (and its side-table effects) and wait until it is committed.

        Raises:
            ActorStopped: If this node was fenced off the instance.
            WriteLost: If an earlier `submit` failed.
        """
        await self._wait(self._queue(entry, change, effects))

    async def append_in(
        self,
        transaction: Callable[[Callable[[Connection], None]], Awaitable[None]],
        entry: Entry,
        change: InstanceChange | None = None,
        *,
        effects: tuple[Effect, ...] = (),
    ) -> None:
        """Append an entry inside the caller's own transaction, which commits it.

        ``transaction`` runs the given write in that transaction and commits
        (an activity that uses ``ctx.session``: the user's writes and the entry
        commit together). The append is fenced like any other.

        Raises:
            ActorStopped: If this node was fenced off the instance.
            WriteLost: If the transaction failed: the entry may be missing, so the
                actor must replay from what was committed.
        """
        self._check_open()
        seq = self.next_seq
        self.next_seq += 1
        op = Append.of(self.instance_id, seq, self.epoch, entry, change, effects=effects)
        self._own_commits += 1
        try:
            await transaction(lambda conn: self._writer.write_in(conn, op))
        except FencedError as exc:
            raise ActorStopped(str(exc)) from exc
        except Exception as exc:
            raise WriteLost(f"the transaction journaling {kind_of(entry)} of "
                            f"{self.instance_id!r} failed: {exc!r}") from exc
        finally:
            self._own_commits -= 1
            if not self._own_commits and self._own_done is not None:
                self._own_done.set()
                self._own_done = None

    def submit(
        self,
        entry: Entry,
        change: InstanceChange | None = None,
        *,
        effects: tuple[Effect, ...] = (),
    ) -> asyncio.Future[None]:
        """Queue an append without waiting for its commit.

        The caller may go on computing, but nothing that leaves the actor (an
        activity's side effects, a read of its own state, a hook, an answer to a
        caller) may happen before `settled`. Writes commit in submission order,
        and a write after a failed one is refused, so the journal never has a gap.
        The returned future tells when this write is committed.
        """
        future = self._queue(entry, change, effects)
        future.add_done_callback(mark_seen)  # its error surfaces through `settled`
        self._unsettled = future
        return future

    async def settled(self) -> None:
        """Wait until every submitted write is committed.

        Raises:
            ActorStopped: If this node was fenced off the instance.
            WriteLost: If a submitted write failed.
        """
        future = self._unsettled
        if future is not None:
            await self._wait(future, submitted=True)

    def _queue(self, entry: Entry, change: InstanceChange | None,
               effects: tuple[Effect, ...]) -> asyncio.Future[None]:
        self._check_open()
        seq = self.next_seq
        self.next_seq += 1
        op = Append.of(self.instance_id, seq, self.epoch, entry, change, effects=effects)
        return self._writer.append(op, after=self._unsettled)

    async def _wait(self, future: asyncio.Future[Any], *, submitted: bool = False) -> Any:
        try:
            result = await future
        except FencedError as exc:
            raise ActorStopped(str(exc)) from exc
        except EarlierWriteFailed as exc:
            raise WriteLost(str(exc)) from exc
        except Exception as exc:
            if submitted:
                raise WriteLost(f"a journal write of {self.instance_id!r} failed: {exc!r}"
                                ) from exc
            raise
        newest = self._unsettled
        if (newest is not None and newest.done() and not newest.cancelled()
                and newest.exception() is None):
            self._unsettled = None
        return result
