"""`EddaApp`: one node of the runtime, embedded in the user's process.

A node owns a database (writer and reader engines), one group-commit writer,
a node lease, a supervisor for its workflow actors, a recovery sweep and a
transport for wake-ups. ``initialize()`` migrates the schema, takes the lease
and recovers every unfinished instance it can run; ``shutdown()`` stops the
actors and hands their instances back for any node to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from edda.journal.channels import StoreMessage, new_message_id
from edda.journal.clock import SystemClock
from edda.journal.database import Database, memory_stand_in
from edda.journal.stores import Stores, sql_stores
from edda.runtime import queries, starts
from edda.runtime.bell import own_transport
from edda.runtime.channels import check_payload, wake_receivers
from edda.runtime.events import check_event_type
from edda.runtime.http import HttpEdge
from edda.runtime.ingress import accept_cloudevent
from edda.runtime.instances import InstanceRunner
from edda.runtime.node import Node
from edda.runtime.registry import DEFAULT, Registry, app_made, app_started, app_stopped
from edda.runtime.relayer import OutboxRelayer
from edda.runtime.results import first_stop, wait_result
from edda.runtime.retry import RetryPolicy
from edda.runtime.saga import CancelResult
from edda.runtime.starts import check_instance_id
from edda.runtime.storage_view import StorageView
from edda.transports.nats import NatsTransport

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from types import TracebackType

    from edda.actors.placement import Placement
    from edda.journal.clock import Clock
    from edda.journal.group_commit import GroupCommitWriter
    from edda.journal.retry import RetryOutcome
    from edda.runtime.hooks import WorkflowHooks
    from edda.runtime.http import Authorizer
    from edda.runtime.workflow import Workflow
    from edda.transports.base import Transport

log = logging.getLogger("edda.app")
F = TypeVar("F", bound="Callable[..., Any]")


def generate_worker_id(service_name: str) -> str:
    """A node id: ``"{service}-{pid}-{8 hex}"``."""
    return f"{service_name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class EddaApp:
    """A durable-execution node: the workflow runtime inside your process.

    Args:
        service_name: Name of this service; prefixes the node id ("edda" by default, so
            Edda's `EddaApp(db_url=...)` works).
        db_url: ``sqlite:///path.db`` (default choice) or ``postgresql://...``.
        hooks: An observer (`WorkflowHooks`).
        default_retry_policy: Policy for activities that declare none.
        sqlite_synchronous: SQLite ``synchronous`` pragma; ``FULL`` (default)
            fsyncs every commit.
        lease_seconds: How long a node's lease lasts without a heartbeat; a node
            that dies on another host is taken over after at most this long.
        recovery_interval: Seconds between safety sweeps for orphaned instances.
        transport: Transport for wake-ups and membership news. By default the
            node rings the other processes on the same database itself
            (LISTEN/NOTIFY on PostgreSQL, local sockets beside a SQLite file).
        nats_url: A NATS server URL, or a list of the servers of a NATS cluster
            (extra ``nats``): the node joins the cluster of nodes on its database
            over NATS. Mail for an instance goes to the one node that owns it,
            nodes hear each other's arrival, departure and death within a
            second, and a dead node's partitions move within a lease renewal.
            Give it to every node of the database.
        liveness_interval: How often a node on NATS says it is alive (a node
            silent for three intervals is probed); ``lease_seconds / 20`` by
            default, at most 0.25 s.
        idle_seconds: How long an instance that only waits stays in memory before
            it is passivated (gives its instance up and leaves memory).
        group_commit_max_batch: Most journal appends written in one transaction.
        max_body_bytes: Largest HTTP request body accepted (413 beyond it).
        authorize: Called with each request to the cancel route and the JSON API
            (and to the CloudEvents route if ``authorize_events``); a false
            answer gives 401. See `bearer_token`.
        authorize_events: Also protect CloudEvent ingress with ``authorize``.
        outbox_options: Keyword arguments for the app's `OutboxRelayer`
            (``max_retries``, ``backoff_base``, ``request_timeout``, ...).
        workflows: The workflows this node runs. By default every workflow
            defined with ``@workflow`` in this process.
        clock: Where timers and timestamps take the time from (tests pass
            `edda.testing.MockClock`); the real time by default.
        start_timeout: Seconds ``initialize()`` gives each node service (and the
            database) to start before it fails naming the one that did not.
        observer: Join the database without owning any of its instances: the app
            answers queries, serves the JSON API and the viewer, and sends starts,
            events, cancels and retries to the nodes that own the instances, but
            runs none itself (`edda viewer` uses this).

    The remaining parameters are Edda's, accepted so Edda code runs unchanged:
    the pool settings apply to PostgreSQL; the others are documented in
    docs/compat.md.
    """

    def __init__(
        self,
        service_name: str = "edda",
        db_url: str | None = None,
        outbox_enabled: bool = False,
        broker_url: str | None = None,
        hooks: WorkflowHooks | None = None,
        default_retry_policy: RetryPolicy | None = None,
        message_retention_days: int = 7,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: int = 30,
        pool_recycle: int = 3600,
        pool_pre_ping: bool = True,
        use_listen_notify: bool | None = None,
        notify_fallback_interval: int = 30,
        max_workflows_per_batch: int | Literal["auto", "auto:cpu"] = 10,
        leader_heartbeat_interval: int = 15,
        leader_lease_duration: int = 45,
        *,
        sqlite_synchronous: str = "FULL",
        lease_seconds: float = 5.0,
        recovery_interval: float | None = None,
        transport: Transport | None = None,
        nats_url: str | Sequence[str] | None = None,
        liveness_interval: float | None = None,
        group_commit_max_batch: int = 1000,
        idle_seconds: float = 5.0,
        max_body_bytes: int = 1_048_576,
        authorize: Authorizer | None = None,
        authorize_events: bool = False,
        outbox_options: Mapping[str, Any] | None = None,
        workflows: Iterable[Workflow[..., Any]] | None = None,
        clock: Clock | None = None,
        start_timeout: float = 10.0,
        observer: bool = False,
    ) -> None:
        if db_url is None:
            hint = (f"; {service_name!r} looks like a database URL: pass it as db_url="
                    if isinstance(service_name, str) and "://" in service_name else "")
            raise TypeError(f"EddaApp needs a database: EddaApp(db_url='sqlite:///edda.db') "
                            f"or EddaApp('my-service', 'postgresql://...'){hint}")
        if not isinstance(service_name, str) or not service_name:
            raise ValueError("service_name must be a non-empty string")
        if outbox_enabled and not broker_url:
            raise ValueError("broker_url is required when outbox_enabled=True")
        if not (isinstance(max_workflows_per_batch, int)
                or max_workflows_per_batch in ("auto", "auto:cpu")):
            raise ValueError("max_workflows_per_batch must be an int, 'auto' or 'auto:cpu'")
        if default_retry_policy is not None and not isinstance(default_retry_policy, RetryPolicy):
            raise TypeError("default_retry_policy must be a RetryPolicy")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if group_commit_max_batch < 1:
            raise ValueError("group_commit_max_batch must be at least 1")
        if idle_seconds < 0:
            raise ValueError("idle_seconds must not be negative")
        self.idle_seconds = idle_seconds
        self.clock: Clock = clock or SystemClock()
        if start_timeout <= 0:
            raise ValueError("start_timeout must be positive")
        self.start_timeout = start_timeout
        self.observer = observer
        #: The workflows and compensations this node knows.
        self.registry = Registry(DEFAULT, workflows)
        self._max_batch = group_commit_max_batch
        self.event_handlers: dict[str, list[Callable[[Any], Awaitable[Any]]]] = {}
        self.outbox_relayer: OutboxRelayer | None = None
        self._outbox_options = dict(outbox_options or {})
        if outbox_enabled:
            assert broker_url is not None
            # Check the options now; the relayer itself starts with the app.
            OutboxRelayer(self, broker_url, **self._outbox_options)
        self._http = HttpEdge(self, max_body_bytes=max_body_bytes, authorize=authorize,
                              authorize_events=authorize_events)
        self.service_name = service_name
        stand_in = memory_stand_in(db_url)
        if stand_in is not None:  # sqlite:///:memory: is a private file, gone with the app
            db_url, folder = stand_in
            weakref.finalize(self, shutil.rmtree, folder, True)
        self.db_url = db_url
        self.outbox_enabled = outbox_enabled
        self.broker_url = broker_url
        self.hooks = hooks
        self.default_retry_policy = default_retry_policy
        self.message_retention_days = message_retention_days
        self.worker_id = generate_worker_id(service_name)
        self.lease_seconds = lease_seconds
        self.recovery_interval = recovery_interval or lease_seconds
        self._db_options: dict[str, Any] = {
            "sqlite_synchronous": sqlite_synchronous, "pool_size": pool_size,
            "max_overflow": max_overflow, "pool_timeout": pool_timeout,
            "pool_recycle": pool_recycle, "pool_pre_ping": pool_pre_ping,
        }
        # Fail on a bad URL now, before anything starts.
        self._db: Database = Database.open(db_url, **self._db_options)
        if transport is not None and nats_url is not None:
            raise ValueError("give either transport or nats_url, not both")
        if liveness_interval is not None and liveness_interval <= 0:
            raise ValueError("liveness_interval must be positive")
        self.nats_url = nats_url
        self.liveness_interval = liveness_interval or min(0.25, lease_seconds / 20)
        self._own_transport = transport is None
        self.transport: Transport = transport or self._make_transport()
        self._initialized = False
        self._ever_started = False
        self._starting: asyncio.Task[None] | None = None
        self._node: Node | None = None
        self._failure: BaseException | None = None
        self._writer: GroupCommitWriter | None = None
        self._stores: Stores | None = None
        self._runner = InstanceRunner(self, self.worker_id, service_name=service_name, hooks=hooks,
                                      default_retry_policy=default_retry_policy,
                                      idle_seconds=idle_seconds, clock=self.clock)
        self.supervisor = self._runner.supervisor
        #: Edda's ``app.storage`` queries (`StorageView`), answered from the journal.
        self.storage = StorageView(self)
        app_made(self)

    # -- lifecycle -------------------------------------------------------------

    async def initialize(self) -> None:
        """Migrate the schema, start the node's services, take the node lease and
        recover unfinished instances.

        Idempotent. After it returns, ``Workflow.start`` runs on this app.

        Raises:
            ServiceStartError: Naming what could not start within ``start_timeout``
                (the database, the transport, ...) and why; nothing keeps running.
        """
        if self._initialized:
            return
        if self._starting is None:
            # One start, in a task of its own: every caller waits for it, and a caller
            # that is cancelled (a timeout around a first use) does not cancel it.
            self._starting = asyncio.create_task(self._start_once(), name="edda-app-start")
        await asyncio.shield(self._starting)

    async def _start_once(self) -> None:
        try:
            await self._start_node()
        finally:
            self._starting = None

    async def _start_node(self) -> None:
        node = Node(self)
        try:
            await node.start()
        except BaseException:
            await self._close_resources()
            raise
        self._node = node
        self.outbox_relayer = node.relayer
        self._stores = node.stores
        self._writer = node.writer
        self._failure = None
        self._initialized = True
        self._ever_started = True
        app_started(self)

    async def shutdown(self) -> None:
        """Stop every actor and give this node's instances back; they resume on next start."""
        self._ever_started = True  # shut down: no longer started by a first use
        if self._starting is not None:  # a start under way: let it finish, then stop it
            with contextlib.suppress(Exception):
                await asyncio.shield(self._starting)
        node = self._node
        if node is None:
            return
        self._initialized = False
        app_stopped(self)
        try:
            await node.stop()
            self._runner.waiters.fail_all(
                "the app shut down before the workflow finished; it resumes when an app "
                "on this database starts again")
        finally:
            self._node = None
            self.outbox_relayer = None
            await self._close_resources()

    async def _close_resources(self) -> None:
        if self._own_transport:
            await self.transport.aclose()
            self.transport = self._make_transport()
        await self._db.dispose()
        self._db = Database.open(self.db_url, **self._db_options)

    def _make_transport(self) -> Transport:
        if self.nats_url is not None:
            return NatsTransport(self.nats_url, name=self.worker_id)
        return own_transport(self.db_url)

    def _stopped_by(self, error: BaseException) -> None:
        """The node stopped itself (a service kept crashing): refuse work from now on."""
        self._initialized = False
        self._failure = error
        app_stopped(self)

    async def __aenter__(self) -> EddaApp:
        await self.initialize()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # -- starting and running instances -----------------------------------------

    async def start_workflow(self, wf: Workflow[..., Any], **kwargs: Any) -> str:
        """Start an instance of ``wf``; see `Workflow.start`.

        With ``instance_id=`` (unless the workflow has a parameter of that name) the
        call is idempotent: if an instance of ``wf`` with that id exists, none is
        created and this waits on that one instead.
        """
        await self._require_initialized()
        self._require_registered(wf)
        chosen = _chosen_id(wf, kwargs)
        stored = wf.prepare_input(kwargs)
        if chosen is None:
            new_id, partition, epoch = self._placement().new_id(wf.name)
            waiter = self._runner.waiters.expect(new_id)
            await starts.create(self, wf, new_id, stored, partition, epoch)
        else:
            new_id = chosen
            waiter = self._runner.waiters.expect(new_id)
            try:
                await starts.create_named(self, wf, new_id, stored)
            except BaseException:
                self._runner.waiters.forget(new_id)
                raise
        instance_id = new_id
        outcome = await first_stop(self._runner.waiters, waiter, self.stores.journal,
                                   self.registry, instance_id, recheck=self.recovery_interval,
                                   is_local=self.supervisor.is_running, read_first=chosen is not None)
        final_id = instance_id
        final_ids = self._runner.waiters.final_ids
        while final_id in final_ids:  # it recurred: Edda returns the newest id
            final_id = final_ids.pop(final_id)
        if outcome.error is not None:
            raise outcome.error
        return final_id

    async def start_instance(self, wf: Workflow[..., Any], **kwargs: Any) -> str:
        """Start an instance of ``wf`` and return its id once it is committed,
        without waiting for it to run (the JSON API's start).

        Raises:
            RuntimeError: If the app is not initialized.
            TypeError, ValueError: If ``kwargs`` do not fit the workflow.
        """
        await self._require_initialized()
        self._require_registered(wf)
        chosen = _chosen_id(wf, kwargs)
        stored = wf.prepare_input(kwargs)
        if chosen is not None:
            await starts.create_named(self, wf, chosen, stored)
            return chosen
        instance_id, partition, epoch = self._placement().new_id(wf.name)
        await starts.create(self, wf, instance_id, stored, partition, epoch)
        return instance_id

    def _placement(self) -> Placement:
        if self._node is None:
            raise RuntimeError("EddaApp is not initialized; await app.initialize() first")
        return self._node.placement

    def _require_registered(self, wf: Workflow[..., Any]) -> None:
        if self.registry.workflow(wf.name) is not wf:
            raise LookupError(f"workflow {wf.name!r} is not registered on this node; give it "
                              "in EddaApp(..., workflows=[...]) or leave that out to run every "
                              "@workflow of the process")

    async def _require_initialized(self) -> None:
        """Initialize an app that was never started (as Edda's apps do on first use,
        so an app mounted without lifespan events works from any entry point); an app
        that was shut down, or stopped by a failure, says so."""
        if self._failure is not None:
            raise self._failure
        if not self._ever_started:
            await self.initialize()
        if not self._initialized or self._writer is None:
            raise RuntimeError("EddaApp is not initialized; await app.initialize() first")

    @property
    def fresh(self) -> bool:
        """True until the app is first initialized."""
        return not self._ever_started

    def on_event(self, event_type: str, proto_type: type[Any] | None = None
                 ) -> Callable[[F], F]:
        """Register ``async def handler(event)`` for CloudEvents of ``event_type``.

        Handlers run after the event is committed and answered (202); they are
        not durable (a crash in between skips them). For durable reactions,
        start an ``@workflow(event_handler=True)`` or ``wait_event`` in one.
        ``proto_type`` is stored on the handler as ``_proto_type`` (Edda's API).
        """
        check_event_type(event_type)

        def register(func: F) -> F:
            if not callable(func):
                raise TypeError(f"on_event needs an async function, got {func!r}")
            if proto_type is not None:
                func._proto_type = proto_type  # type: ignore[attr-defined]
            self.event_handlers.setdefault(event_type, []).append(func)
            return func

        return register

    async def handle_cloudevent(self, event: Any, wait: bool = False) -> None:
        """Accept a CloudEvent: store it, then wake every workflow waiting for its type.

        Returns once the event is committed: a crash afterwards never loses it.
        If an ``@workflow(event_handler=True)`` is named like the event's type
        (and no `on_event` handler claims the type), its instance is created in
        the same transaction, with the event's data (a dict) as input. Then the
        `on_event` handlers run: in the background, or one after the other when
        ``wait`` is true; their errors are logged.

        ``event`` is a mapping of CloudEvent attributes (``type``, ``source``,
        ``data``, extensions, ...) or a ``cloudevents`` SDK event.

        Raises:
            RuntimeError: If the app is not initialized.
            ValueError: For a malformed event, or data that does not fit the
                workflow it starts (nothing is stored).
        """
        await self._require_initialized()
        await accept_cloudevent(self, event, wait=wait)

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        """The ASGI application: CloudEvents in, cancel, health and a JSON API
        (see docs/http.md). Initializes the app on first use."""
        await self._http(scope, receive, send)

    async def publish(self, channel: str, data: dict[str, Any] | bytes,
                      metadata: dict[str, Any] | None = None, *,
                      target_instance_id: str | None = None) -> str:
        """Publish a channel message from outside any workflow; returns its id.

        Returns once the message is committed; then wakes its receivers.

        Raises:
            RuntimeError: If the app is not initialized.
            TypeError, ValueError: For unstorable data or an empty channel name.
        """
        await self._require_initialized()
        assert self._writer is not None
        payload, raw, meta = check_payload(channel, data, metadata)
        meta["published_at"] = datetime.now(UTC).isoformat()
        message_id = new_message_id()
        audience = await self.stores.channels.publish(
            StoreMessage(message_id, channel, payload, raw, meta, target_instance_id))
        await wake_receivers(self.wake, audience, target_instance_id)
        return message_id

    async def send_to(self, instance_id: str, data: dict[str, Any] | bytes,
                      channel: str = "__direct__",
                      metadata: dict[str, Any] | None = None) -> bool:
        """Send to one instance's direct mailbox from outside any workflow (the
        receiver uses ``subscribe(ctx, channel, mode="direct")``).

        Returns once the message is committed, then wakes the receiver on whichever
        node runs it. The message is kept until the instance receives it, so it may
        be sent before the instance subscribes, or even exists.

        Returns:
            Whether the instance subscribes to that mailbox now.

        Raises:
            RuntimeError: If the app is not initialized.
            TypeError, ValueError: For unstorable data, an empty channel name or a
                bad instance id.
        """
        await self._require_initialized()
        check_instance_id(instance_id)
        payload, raw, meta = check_payload(channel, data, metadata)
        now = datetime.now(UTC).isoformat()
        meta["published_at"] = meta["sent_at"] = now
        audience = await self.stores.channels.publish(StoreMessage(
            new_message_id(), f"{channel}:{instance_id}", payload, raw, meta, instance_id))
        await wake_receivers(self.wake, audience, instance_id)
        return instance_id in audience.subscribers

    async def cancel_workflow(self, instance_id: str, cancelled_by: str = "user"
                              ) -> CancelResult:
        """Cancel a running or waiting workflow instance.

        Returns once the cancel is committed (it is never lost). From then on the
        instance starts no new activity; an activity already running finishes (and
        is compensated). Its compensations then run newest first and it ends
        ``cancelled`` with ``cancelled_by``, ``cancelled_at`` and
        ``previous_status`` in its ``output_data``.

        Returns:
            A `CancelResult`: true if the cancel was accepted; false (with
            ``.reason``) for an unknown instance, one that has ended, one that is
            compensating after a failure, or one already asked to cancel.

        Raises:
            RuntimeError: If the app is not initialized.
            ValueError: If ``cancelled_by`` is empty.
        """
        await self._require_initialized()
        outcome = await self._runner.cancel(instance_id, cancelled_by)
        return CancelResult(outcome.accepted, outcome.reason)

    async def retry_workflow(self, instance_id: str, retried_by: str = "user"
                             ) -> RetryOutcome:
        """Run a failed instance again from its last good step.

        The steps that completed are not run again (they replay from the journal);
        the activity whose failure ended the run, and everything after it, runs
        anew. Use it once the cause is fixed (a partner is back, a bug is fixed and
        deployed). The journal keeps the failed attempt; its history shows both.

        Returns:
            A result that is true if the instance is running again; false, with
            ``.reason``, for an unknown instance, one that has not failed, or one
            that ran its compensations when it failed (its steps were undone, so
            start a new instance instead).

        Raises:
            RuntimeError: If the app is not initialized.
            ValueError: If ``retried_by`` is empty.
        """
        await self._require_initialized()
        return await self._runner.retry(instance_id, retried_by)

    async def wake(self, instance_id: str) -> None:
        """Ask the node that owns ``instance_id`` to run it (at most once; the sweep backs it)."""
        await self._runner.wake(instance_id)

    async def wait_result(self, instance_id: str, timeout: float | None = None) -> Any:
        """Wait until an instance ends; return its result or raise its failure.

        Works for instances started anywhere on this database; the node is told
        at once when one of its own instances ends (no polling). An instance
        that continued as new (``ctx.recur``) is followed to its newest one.

        Args:
            instance_id: The instance, as ``start()`` returned it.
            timeout: Give up after this many seconds (None: wait for ever).

        Returns:
            The workflow's return value (converted to its annotated type).

        Raises:
            TimeoutError: If it has not ended within ``timeout``.
            LookupError: If there is no such instance.
            WorkflowCancelledException: If it was cancelled.
            Exception: The workflow's own failure, as its own type.
            RuntimeError: If the app is not initialized, or shuts down meanwhile.
        """
        await self._require_initialized()
        async with asyncio.timeout(timeout):
            return await wait_result(self._runner.waiters, self.stores.journal, self.registry, instance_id,
                                     recheck=self.recovery_interval,
                                     is_local=self.supervisor.is_running)

    # -- reading ---------------------------------------------------------------

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """An instance as a dict (status, input_data, output_data, ...), or None."""
        return await queries.get_instance((await self._reader()).journal, instance_id)

    async def get_history(self, instance_id: str) -> list[dict[str, Any]]:
        """The journal of an instance, in journal order."""
        return await queries.get_history((await self._reader()).journal, instance_id)

    async def find_instances(
        self,
        *,
        input_filters: dict[str, Any] | None = None,
        status: str | None = None,
        workflow_name: str | None = None,
        instance_id: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        limit: int = 50,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """Instances newest first, filtered, one page at a time.

        Returns:
            ``{"instances": [...], "next_page_token": str | None, "has_more": bool}``.

        Raises:
            ValueError: For an unknown status, a bad JSON path, a naive datetime,
                a limit outside 1..1000 or a page token not made by this method.
        """
        return await queries.find_instances(
            (await self._reader()).journal, input_filters=input_filters, status=status, workflow_name=workflow_name,
            instance_id=instance_id, started_after=started_after, started_before=started_before,
            limit=limit, page_token=page_token,
        )

    @property
    def stores(self) -> Stores:
        """The node's typed stores (journal, waits, channels, leases, outbox).

        Raises:
            RuntimeError: If the app is not initialized.
        """
        if self._stores is None:
            raise RuntimeError("EddaApp is not initialized; await app.initialize() first")
        return self._stores

    async def _reader(self) -> Stores:
        """Stores to read with: a first use starts a fresh app (so its schema
        exists); a stopped app's database can still be read."""
        if self.fresh:
            await self.initialize()
        return self._reader_stores()

    def _reader_stores(self) -> Stores:
        """Stores to read with, also before `initialize` (reads need no writer)."""
        if self._stores is not None:
            return self._stores
        return sql_stores(self._db, None)

    @property
    def database(self) -> Database:
        """The node's database engines (for tests and tools)."""
        return self._db


def _chosen_id(wf: Workflow[..., Any], kwargs: dict[str, Any]) -> str | None:
    """The caller's ``instance_id=``, taken out of ``kwargs``, unless the workflow has a
    parameter of that name (which then gets it)."""
    if "instance_id" in kwargs and not wf.takes("instance_id"):
        return check_instance_id(kwargs.pop("instance_id"))
    return None
