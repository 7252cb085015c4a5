"""The storage seam: what the runtime may ask of a database, store by store.

The runtime never writes SQL or hands the database a callback. It calls these
typed stores, and it journals with `Append` values whose ``effects`` are typed
writes from the same modules (`AddWait`, `Consume`, `InsertOutbox`, ...). Each
store has one SQL implementation for SQLite and PostgreSQL (the differences
live in `edda.journal.dialects`) and a contract suite run on both
(``tests/contract/``).

Reads the runtime needs in order to go on wait out an unavailable database;
writes go through the node's group-commit writer, which does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from edda.journal.channels import SqlChannelStore
from edda.journal.leases import SqlLeaseStore
from edda.journal.outbox import SqlOutboxStore
from edda.journal.store import SqlJournalStore
from edda.journal.waits import SqlWaitStore

if TYPE_CHECKING:
    from collections.abc import Collection

    from edda.journal.cancel import CancelOutcome, CancelRequest
    from edda.journal.channels import Audience, StoredMessage, StoreMessage
    from edda.journal.database import Database
    from edda.journal.group_commit import GroupCommitWriter
    from edda.journal.leases import Claimed, NodeRow, Released
    from edda.journal.outbox import OutboxRow, Settled
    from edda.journal.partitions import Beat, PartitionRow
    from edda.journal.records import Record
    from edda.journal.retry import RetryOutcome
    from edda.journal.store import InstanceFilter
    from edda.journal.waits import StoredEvent


class JournalStore(Protocol):
    """Journals, the instance projection and cancel requests."""

    async def records(self, instance_id: str) -> list[Record]: ...
    async def activation(self, instance_id: str
                         ) -> tuple[list[Record], CancelRequest | None]: ...
    async def cancel_request(self, instance_id: str) -> CancelRequest | None: ...
    async def last_record(self, instance_id: str) -> Record | None: ...
    async def next_seq(self, instance_id: str) -> int: ...
    async def row(self, instance_id: str, *, patient: bool = True
                  ) -> dict[str, Any] | None: ...
    async def raw_records(self, instance_id: str) -> list[dict[str, Any]]: ...
    async def list_rows(self, where: InstanceFilter, *, limit: int,
                        after: tuple[float, str] | None) -> list[dict[str, Any]]: ...
    async def request_cancel(self, instance_id: str, by: str, at: float) -> CancelOutcome: ...
    async def request_retry(self, instance_id: str, by: str, at: float) -> RetryOutcome: ...
    async def pending_cancels(self, node_id: str) -> list[tuple[str, CancelRequest]]: ...


class WaitStore(Protocol):
    """Durable waits and CloudEvents."""

    async def store_event(self, event_type: str, attributes: dict[str, Any],
                          data_bytes: bytes | None, target_instance_id: str | None
                          ) -> list[str]: ...
    async def event_waiters(self, event_type: str,
                            target_instance_id: str | None) -> list[str]: ...
    async def next_event(self, instance_id: str, event_type: str,
                         since: float) -> StoredEvent | None: ...
    async def waiters_with_pending_events(self, limit: int = 1000) -> list[str]: ...
    async def purge_events(self, older_than: float) -> int: ...


class ChannelStore(Protocol):
    """Channel messages, subscriptions and deliveries."""

    async def publish(self, message: StoreMessage) -> Audience: ...
    async def next_broadcast(self, address: str, instance_id: str,
                             since: float) -> StoredMessage | None: ...
    async def receivers_with_pending_messages(self, limit: int = 1000) -> list[str]: ...
    async def purge_messages(self, older_than: float) -> int: ...


class LeaseStore(Protocol):
    """Node rows and partition leases (judged by the database's clock), and the
    claims of a partition's owner on its instances."""

    async def register(self, node_id: str, service_name: str, hostname: str, pid: int,
                       proc_start: str, lease_seconds: float) -> int: ...
    async def beat(self, node_id: str, lease_seconds: float) -> Beat: ...
    async def acquire(self, node_id: str, partitions: Collection[int],
                      lease_seconds: float) -> dict[int, int]: ...
    async def release_partitions(self, node_id: str, partitions: Collection[int]) -> None: ...
    async def partitions(self) -> list[PartitionRow]: ...
    async def cluster_id(self) -> str: ...
    async def remove(self, node_ids: Collection[str]) -> None: ...
    async def nodes(self) -> list[NodeRow]: ...
    async def claim_orphans(self, node_id: str, workflow_names: Collection[str],
                            limit: int) -> list[Claimed]: ...
    async def claim(self, instance_id: str, node_id: str,
                    workflow_names: Collection[str]) -> Claimed | None: ...
    async def claim_due(self, node_id: str, workflow_names: Collection[str], now: float,
                        limit: int) -> list[Claimed]: ...
    async def release(self, instance_id: str, node_id: str, epoch: int) -> Released: ...
    async def owned_unfinished(self, node_id: str,
                               workflow_names: Collection[str]) -> list[Claimed]: ...
    async def orphans_of_unknown_workflows(self, node_id: str,
                                           workflow_names: Collection[str],
                                           limit: int = 1000) -> list[tuple[str, str]]: ...
    async def next_free_deadline(self, node_id: str,
                                 workflow_names: Collection[str]) -> float | None: ...


class OutboxStore(Protocol):
    """The transactional outbox, as relayers see it."""

    async def claim(self, relayer_id: str, limit: int,
                    claim_seconds: float) -> list[OutboxRow]: ...
    async def settle(self, relayer_id: str, outcomes: list[Settled]) -> int: ...
    async def delete_published(self, older_than: float) -> int: ...
    async def next_due(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Stores:
    """Every store of one database, sharing one node's writer."""

    journal: JournalStore
    waits: WaitStore
    channels: ChannelStore
    leases: LeaseStore
    outbox: OutboxStore


def sql_stores(db: Database, writer: GroupCommitWriter | None) -> Stores:
    """The stores of a SQLite or PostgreSQL database, writing through ``writer`` (or,
    without one, each write in a transaction of its own)."""
    return Stores(journal=SqlJournalStore(db, writer), waits=SqlWaitStore(db, writer),
                  channels=SqlChannelStore(db, writer), leases=SqlLeaseStore(db, writer),
                  outbox=SqlOutboxStore(db, writer))
