"""`OutboxRelayer`: publishes the transactional outbox to a broker, at least once.

Each cycle claims due rows (``processing`` with a deadline, in one
transaction), POSTs each one as a CloudEvent to ``broker_url`` concurrently,
``max_in_flight`` at a time, and settles them in one transaction:

- a 2xx answer: ``published`` (deleted after ``retention_hours``);
- a 4xx answer other than 408 and 429: ``invalid``, never retried (the broker
  says the event itself is wrong);
- anything else (5xx, 408, 429, a timeout, a refused connection): tried again
  after an exponential backoff with jitter, per event, until ``max_retries``
  attempts were made; then ``dead``, which is never polled again;
- older than ``max_age_hours`` before an attempt: ``expired``.

A relayer that dies mid-cycle leaves its rows ``processing``; once their
claim deadline passes, any relayer takes them again (at least once: the event
may be delivered twice, always with the same CloudEvent ``id``).

The relayer of an `EddaApp` is woken as soon as an activity's outbox rows are
committed; ``poll_interval`` is only the safety sweep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from edda.journal.database import Database
from edda.journal.outbox import OutboxRow, Settled, SqlOutboxStore
from edda.runtime.timers import check_seconds

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from edda.journal.stores import OutboxStore
    from edda.runtime.app import EddaApp

log = logging.getLogger("edda.outbox")

_CLEANUP_EVERY_S = 3600.0
_RETRYABLE_4XX = frozenset({408, 425, 429})


def cloudevent_request(event_id: str, event_type: str, source: str, data: Any,
                       data_bytes: bytes | None, content_type: str | None,
                       extensions: dict[str, Any] | None = None,
                       ) -> tuple[dict[str, str], bytes]:
    """Headers and body of a CloudEvent POST: structured mode for JSON data,
    binary mode (``ce-`` headers) for bytes."""
    extra = {str(k).lower(): v for k, v in (extensions or {}).items()}
    if data_bytes is not None:
        headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type,
                   "ce-source": source,
                   "content-type": content_type or "application/octet-stream",
                   **{f"ce-{k}": str(v) for k, v in extra.items()}}
        return headers, data_bytes
    event: dict[str, Any] = {**extra, "specversion": "1.0", "id": event_id, "type": event_type,
                             "source": source, "data": data}
    if content_type:
        event["datacontenttype"] = content_type
    body = json.dumps(event, ensure_ascii=False).encode()
    return {"content-type": "application/cloudevents+json"}, body


class OutboxRelayer:
    """Delivers outbox events to ``broker_url`` as CloudEvents, at least once.

    Args:
        storage: The `EddaApp` (or its `Database`) whose outbox to relay.
        broker_url: Where to POST each event.
        poll_interval: Longest sleep between looks at the outbox (a safety
            sweep: an app's relayer is woken when events commit).
        max_retries: Attempts in all before an event is ``dead``.
        batch_size: Events claimed and sent concurrently per cycle.
        max_age_hours: Events older than this are ``expired`` instead of sent.
        wake_event: An `asyncio.Event` that, when set, starts a cycle at once.
        backoff_base: Seconds before the second attempt; doubles per attempt.
        backoff_max: Longest backoff between two attempts, in seconds.
        request_timeout: Seconds one POST may take.
        retention_hours: How long ``published`` rows are kept.
        headers: Extra HTTP headers for every POST (for example authorization).
        max_in_flight: Most POSTs in flight at once (and pooled connections).

    Raises:
        ValueError, TypeError: For an empty ``broker_url`` or bad numbers.
    """

    def __init__(
        self,
        storage: EddaApp | Database,
        broker_url: str,
        poll_interval: float = 1.0,
        max_retries: int = 3,
        batch_size: int = 10,
        max_age_hours: float | None = None,
        wake_event: asyncio.Event | None = None,
        *,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        request_timeout: float = 10.0,
        retention_hours: float = 24.0,
        headers: dict[str, str] | None = None,
        max_in_flight: int = 8,
    ) -> None:
        if not isinstance(broker_url, str) or not broker_url.startswith(("http://", "https://")):
            raise ValueError(f"broker_url must be an http(s) URL, got {broker_url!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"max_retries must be an int >= 1, got {max_retries!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) \
                or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        self.max_in_flight = max_in_flight
        self.poll_interval = check_seconds(poll_interval, "poll_interval")
        self.backoff_base = check_seconds(backoff_base, "backoff_base")
        self.backoff_max = check_seconds(backoff_max, "backoff_max")
        self.request_timeout = check_seconds(request_timeout, "request_timeout")
        self.retention_seconds = check_seconds(retention_hours, "retention_hours") * 3600
        self.max_age_seconds = (None if max_age_hours is None
                                else check_seconds(max_age_hours, "max_age_hours") * 3600)
        self._storage = storage
        #: The app's clock, if it relays an app's outbox (rows are stamped with it).
        self._now = time.time if isinstance(storage, Database) else storage.clock.now
        self._own_store: OutboxStore | None = None
        self.broker_url = broker_url
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.headers = dict(headers or {})
        self.relayer_id = f"relayer-{uuid.uuid4().hex[:12]}"
        self._wake = wake_event or asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._last_cleanup = 0.0
        #: Counts since start, for tools and benchmarks.
        self.published = 0
        self.failed_attempts = 0

    # -- lifecycle -------------------------------------------------------------------

    name = "outbox relayer"

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Relay until cancelled (the app's relayer is a node service)."""
        self._client = self._new_client()
        task_status.started()
        try:
            await self._loop()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_client()

    async def drain(self) -> None:
        """Events being sent are left claimed; they are sent again once their claim
        expires."""

    async def start(self) -> None:
        """Start relaying in the background (a relayer of your own; idempotent)."""
        if self._task is not None:
            return
        self._client = self._new_client()
        self._task = asyncio.create_task(self._loop(), name="edda-outbox-relayer")

    async def stop(self) -> None:
        """Stop a relayer started with `start`. Events being sent are left claimed;
        they are sent again once their claim expires."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close_client()

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """Start a cycle now (new events were committed)."""
        self._wake.set()

    # -- one cycle -----------------------------------------------------------------

    async def relay_once(self) -> int:
        """Claim, send and settle one batch of due events; returns how many were claimed."""
        # Long enough for every POST of the batch to time out, a wave at a time.
        waves = -(-self.batch_size // self.max_in_flight)
        claim_seconds = self.request_timeout * waves + 5.0
        rows = await self._outbox().claim(self.relayer_id, self.batch_size, claim_seconds)
        if not rows:
            return 0
        slots = asyncio.Semaphore(self.max_in_flight)

        async def send(row: OutboxRow) -> Settled:
            async with slots:
                return await self._send(row)

        outcomes = await asyncio.gather(*(send(row) for row in rows))
        await self._outbox().settle(self.relayer_id, list(outcomes))
        return len(rows)

    async def cleanup(self) -> int:
        """Delete published events older than the retention period; returns how many."""
        self._last_cleanup = time.monotonic()
        return await self._outbox().delete_published(self._now() - self.retention_seconds)

    async def _send(self, row: OutboxRow) -> Settled:
        if self.max_age_seconds is not None and self._now() - row.created_at > self.max_age_seconds:
            return Settled(row.id, "expired", f"older than {self.max_age_seconds / 3600:g} hours")
        data = None if row.data is None else json.loads(row.data)
        extensions = None if row.extensions is None else json.loads(row.extensions)
        headers, body = cloudevent_request(row.event_id, row.event_type, row.event_source, data,
                                           row.data_bytes, row.content_type, extensions)
        client = self._client
        if client is None:
            client = self._client = self._new_client()
        try:
            response = await client.post(self.broker_url, content=body,
                                         headers={**self.headers, **headers})
        except httpx.HTTPError as exc:
            return self._retry(row, f"{type(exc).__name__}: {exc}")
        if response.is_success:
            self.published += 1
            return Settled(row.id, "published")
        error = f"HTTP {response.status_code}: {response.text[:200]}"
        if 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
            log.warning("broker refused outbox event %s (%s): %s", row.event_id,
                        row.event_type, error)
            return Settled(row.id, "invalid", error)
        return self._retry(row, error)

    def _new_client(self) -> httpx.AsyncClient:
        # httpx's pool slows down with many queued requests: keep the queue short.
        limits = httpx.Limits(max_connections=self.max_in_flight,
                              max_keepalive_connections=self.max_in_flight)
        return httpx.AsyncClient(timeout=self.request_timeout, limits=limits)

    def _retry(self, row: OutboxRow, error: str) -> Settled:
        self.failed_attempts += 1
        if row.attempts >= self.max_retries:
            log.error("outbox event %s (type %s, source %s) is dead after %d attempts; it "
                      "stays in the outbox as dead: %s", row.event_id, row.event_type,
                      row.event_source, row.attempts, error)
            return Settled(row.id, "dead", f"{row.attempts} attempts; last: {error}")
        return Settled(row.id, "pending", error, self._now() + self.backoff(row.attempts))

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts: exponential, capped,
        with jitter (between half and all of it), so retries of many events spread."""
        delay: float = min(self.backoff_max, self.backoff_base * 2.0 ** (attempts - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    # -- the loop ------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - self._last_cleanup > _CLEANUP_EVERY_S:
                    await self.cleanup()
                if await self.relay_once() >= self.batch_size:
                    continue  # more may be due at once
                due = await self._outbox().next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay cycle failed; trying again in %ss",
                              self.poll_interval)
                due = None
            sleep = self.poll_interval
            if due is not None:
                sleep = max(0.0, min(sleep, due - self._now()))
            if sleep > 0:
                with anyio.move_on_after(sleep):
                    await self._wake.wait()

    def _outbox(self) -> OutboxStore:
        storage = self._storage
        if isinstance(storage, Database):
            if self._own_store is None:
                self._own_store = SqlOutboxStore(storage, None)
            return self._own_store
        return storage.stores.outbox  # shares the app's group commit
