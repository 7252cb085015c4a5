"""Errors of the storage layer that callers above can handle."""

from __future__ import annotations


class FencedError(RuntimeError):
    """This node no longer owns the instance at this epoch; the write was refused."""

    def __init__(self, instance_id: str, epoch: int) -> None:
        super().__init__(
            f"instance {instance_id!r} is no longer owned by this node at epoch {epoch}; "
            "another node took it over, so this node stops running it"
        )
        self.instance_id = instance_id
        self.epoch = epoch


class JournalConflictError(RuntimeError):
    """Another writer already appended at this sequence number."""

    def __init__(self, instance_id: str, seq: int) -> None:
        super().__init__(f"journal of {instance_id!r} already has an entry at seq {seq}")
        self.instance_id = instance_id
        self.seq = seq


class EarlierWriteFailed(RuntimeError):
    """A write was refused because an earlier write of the same actor failed."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(f"an earlier journal write of this instance failed: {cause!r}")
        self.__cause__ = cause


class DatabaseUnavailableError(RuntimeError):
    """The database stayed unavailable until the node stopped waiting for it.

    ``maybe_committed`` is False when the write certainly was not committed (it
    can be made again safely), True when the connection dropped while it was
    committing and nobody could tell.
    """

    def __init__(self, cause: BaseException, *, maybe_committed: bool) -> None:
        what = ("it may or may not have been committed" if maybe_committed
                else "it was not committed")
        super().__init__(f"the database was unavailable until the node stopped waiting for "
                         f"it ({type(cause).__name__}: {cause}); {what}")
        self.maybe_committed = maybe_committed
