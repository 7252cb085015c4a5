"""Reading and commanding a database that running nodes use, without being a node.

Tools (the ``edda`` command line) need to list and inspect instances and to
cancel or retry one while nodes run on the same database. A node would take
its share of the partitions, so `AdminClient` is not one: it opens the
database, reads with the same queries as `EddaApp`, and commits a request
through the journal store (a cancel request on the instance's row, or a retry).
Then it does what a node does after such a commit: it sends the instance's
partition address a ``cancel`` or ``wake`` mail, so the node that owns the
partition acts within milliseconds. The mail goes over the same bell the nodes
use (LISTEN/NOTIFY on PostgreSQL, sockets beside a SQLite file) or over NATS
when nodes are clustered with it. The mail is only a hint: the owner's sweep
finds the committed request anyway, and a node that starts later acts on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from edda.actors.address import Addresses, InstanceMail, encode_mail
from edda.journal.database import Database, parse_db_url, shown_url
from edda.journal.migrations import LATEST_VERSION, current_version
from edda.journal.stores import Stores, sql_stores
from edda.runtime import queries
from edda.runtime.bell import own_transport
from edda.transports.nats import NatsTransport

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from edda.actors.routing import Kind

#: How long a NATS connection may take before the mail is left to the sweep.
_NATS_CONNECT = 2.0


class AdminError(Exception):
    """The database cannot be used for this: it is missing, or no Edda database."""


@dataclass(frozen=True, slots=True)
class Request:
    """What a cancel or retry request found.

    ``accepted`` says whether it was committed (``reason`` says why not);
    ``owner`` names the live node that holds the instance's partition and was
    told (None: no node holds it now, so the request waits for one to start);
    ``told`` is False when the mail could not be sent (the owner finds the
    request at its next sweep).
    """

    accepted: bool
    reason: str
    owner: str | None = None
    told: bool = False


class AdminClient:
    """Reads and requests on the database at ``db_url``, without running a node.

    Args:
        db_url: The database the nodes use (``sqlite:///...`` or ``postgresql://...``).
        nats_url: The NATS servers of the nodes, if they are clustered over NATS;
            without it, mail goes over the database's own bell.

    Raises:
        ValueError: For a malformed or unsupported ``db_url``.
        ImportError: For PostgreSQL without asyncpg.
    """

    def __init__(self, db_url: str, *, nats_url: str | Sequence[str] | None = None) -> None:
        parsed = parse_db_url(db_url)
        self.db_url = db_url
        self._dialect = parsed.dialect
        self._sqlite_path = (Path(str(make_url(parsed.url).database)).expanduser()
                             if parsed.dialect == "sqlite" else None)
        self.nats_url = nats_url
        self._db: Database | None = None
        self._stores: Stores | None = None

    async def open(self) -> None:
        """Connect and check that this is an Edda database of a schema it reads.

        Raises:
            AdminError: If the SQLite file is missing or the database has no Edda
                schema, or one older than this version.
            Exception: The driver's error if the database cannot be reached.
        """
        if self._sqlite_path is not None and not self._sqlite_path.is_file():
            raise AdminError(f"there is no database file {str(self._sqlite_path)!r}")
        db = Database.open(self.db_url, pool_size=2)
        try:
            version = await current_version(db)
            if version == 0:
                raise AdminError(f"{shown_url(self.db_url)} is not an Edda database (it has no "
                                 "Edda tables; a node creates them when it first starts)")
            if version < LATEST_VERSION:
                raise AdminError(f"{shown_url(self.db_url)} has Edda schema version {version}; "
                                 f"this version reads {LATEST_VERSION}: start a node of this "
                                 "version on it once to upgrade it")
        except BaseException:
            await db.dispose()
            raise
        self._db, self._stores = db, sql_stores(db, None)

    async def aclose(self) -> None:
        db, self._db, self._stores = self._db, None, None
        if db is not None:
            await db.dispose()

    async def __aenter__(self) -> AdminClient:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            raise RuntimeError("AdminClient is not open; await client.open() first")
        return self._stores

    # -- reading ---------------------------------------------------------------------

    async def find_instances(self, **filters: Any) -> dict[str, Any]:
        """A page of instances, newest first; the filters of `EddaApp.find_instances`."""
        return await queries.find_instances(self.stores.journal, **filters)

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        return await queries.get_instance(self.stores.journal, instance_id)

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        return await queries.get_history(self.stores.journal, instance_id)

    # -- requests --------------------------------------------------------------------

    async def cancel(self, instance_id: str, by: str = "cli") -> Request:
        """Commit a cancel of ``instance_id``, then tell the node that owns it.

        The instance then ends as `EddaApp.cancel_workflow` describes.
        """
        outcome = await self.stores.journal.request_cancel(instance_id, by, time.time())
        if not outcome.accepted:
            return Request(False, outcome.reason)
        return await self._tell(instance_id, "cancel", outcome.reason)

    async def retry(self, instance_id: str, by: str = "cli") -> Request:
        """Put a failed instance back to running (see `EddaApp.retry_workflow`), then
        wake the node that owns it."""
        outcome = await self.stores.journal.request_retry(instance_id, by, time.time())
        if not outcome.accepted:
            return Request(False, outcome.reason)
        return await self._tell(instance_id, "wake", outcome.reason)

    async def _tell(self, instance_id: str, kind: Kind, reason: str) -> Request:
        """Send ``kind`` mail to the instance's partition, if a live node holds it."""
        row = await self.stores.journal.row(instance_id, patient=False)
        if row is None:  # it cannot vanish, but say so rather than fail
            return Request(True, reason)
        partition = int(row["partition"])
        leases = await self.stores.leases.partitions()
        held = next((p for p in leases if p.partition == partition), None)
        if held is None or held.owner_node is None or held.remaining <= 0:
            return Request(True, reason)
        mail = InstanceMail(cancel=[instance_id]) if kind == "cancel" \
            else InstanceMail(wake=[instance_id])
        address = Addresses(await self.stores.leases.cluster_id()).partition(partition)
        told = await self._send(address, encode_mail(mail))
        return Request(True, reason, held.owner_node, told)

    async def _send(self, subject: str, data: bytes) -> bool:
        """Publish once on a transport of its own; whether it went out."""
        if self.nats_url is not None:
            nats = NatsTransport(self.nats_url, name="edda-admin")
            try:
                if not await nats.start(timeout=_NATS_CONNECT):
                    return False
                await nats.publish(subject, data)
                await nats.flush()
                return True
            finally:
                await nats.aclose()
        bridged = own_transport(self.db_url)
        try:
            await bridged.start()
            await bridged.publish(subject, data)
            return bridged.ringing
        finally:
            await bridged.aclose()  # rings what is queued first
