"""`NatsTransport`: the transport of a cluster, on nats-py against nats-server.

Plain subscriptions give broadcast, queue groups give competing delivery, and
request/reply reaches whoever subscribes to a subject (a node's own address).
Like every transport it is at-most-once, and it is built to degrade rather
than fail:

- it connects in the background: a node starts while NATS is down, says so
  in the log, and works through the database path until a server answers;
- nats-py reconnects to any server of the cluster and subscribes again;
- every way a message can be lost (the connection dropped, the server or this
  side dropped messages for a slow consumer, a full outgoing buffer) is
  reported to the ``on_gap`` listeners, so that the node sweeps the database
  at once instead of at its next periodic sweep.

Each subscription has a bounded buffer of its own; a message that finds it
full is dropped and reported as a gap, so a slow subscriber never stalls the
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import urllib.parse
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edda.transports.base import (
    Message,
    NoRespondersError,
    Subscription,
    TransportClosedError,
)
from edda.transports.subjects import validate_subject

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSub

log = logging.getLogger("edda.transports.nats")

_BUFFER = 10_000
#: How long a closing transport lets queued publishes reach the server.
_LAST_FLUSH = 1.0


def _install_hint() -> ImportError:
    return ImportError("NatsTransport needs nats-py: pip install '/path/to/edda-actors[nats]' "
                       "(from your checkout, or 'edda-actors[nats] @ git+<repository URL>'; "
                       "see the README's Install section)")


@dataclass(eq=False)
class _NatsSubscription:
    subject: str
    queue: str | None
    items: asyncio.Queue[Message | None]
    on_drop: Callable[[str], None]
    handle: NatsSub | None = None
    dropped: int = field(default=0)
    closed: bool = False

    def offer(self, message: Message) -> None:
        if self.closed:
            return
        try:
            self.items.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            self.on_drop(f"subscription to {self.subject!r} is full")

    def end(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.items.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.next()
            except TransportClosedError:
                return

    async def next(self, timeout: float | None = None) -> Message:
        if self.closed and self.items.empty():
            raise TransportClosedError(f"subscription to {self.subject!r} is closed")
        try:
            item = await asyncio.wait_for(self.items.get(),
                                          None if timeout is None or math.isinf(timeout)
                                          else timeout)
        except TimeoutError:
            raise TimeoutError(f"nothing on {self.subject!r} within {timeout:g} s") from None
        if item is None:
            self.items.put_nowait(None)  # later calls end too
            raise TransportClosedError(f"subscription to {self.subject!r} is closed")
        return item


class NatsTransport:
    """A `Transport` over NATS.

    Args:
        servers: A ``nats://host:port`` URL or a list of them (the servers of one
            cluster; the client picks one and fails over to the others).
        name: The connection name shown by the server's monitoring.
        connect_timeout: Seconds one connection attempt may take.
        reconnect_wait: Seconds between attempts to reach a server again.
        buffer: Messages each subscription holds before it drops (a gap).
    """

    def __init__(self, servers: str | Sequence[str], *, name: str | None = None,
                 connect_timeout: float = 2.0, reconnect_wait: float = 0.25,
                 buffer: int = _BUFFER) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise _install_hint() from None
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers or not all(isinstance(s, str) and s for s in self.servers):
            raise ValueError(f"nats_url must be a server URL or a list of them, got {servers!r}")
        schemes = {_check_server(server) for server in self.servers}
        if schemes & {"ws", "wss"} and schemes - {"ws", "wss"}:
            raise ValueError(f"nats_url mixes websocket and plain servers: {self.servers!r}; "
                             "use one kind for the whole cluster")
        self.name = name
        self._buffer = buffer
        self._connect_timeout = connect_timeout
        self._reconnect_wait = reconnect_wait
        self._nc: Client | None = None
        self._subs: list[_NatsSubscription] = []
        self._closed = False
        self._connecting: asyncio.Task[None] | None = None
        self._gap_listeners: list[Callable[[str], None]] = []
        self._ready = asyncio.Event()
        self._late = False
        #: Messages lost to a gap of any kind (for tools and tests).
        self.gaps = 0

    # -- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a server is reachable now."""
        return self._nc is not None and self._nc.is_connected

    def on_gap(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(why)`` whenever messages may have been lost; returns the
        function that stops calling it."""
        self._gap_listeners.append(listener)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._gap_listeners.remove(listener)

        return stop

    def _gap(self, why: str) -> None:
        self.gaps += 1
        for listener in self._gap_listeners:
            try:
                listener(why)
            except Exception:
                log.warning("a gap listener failed", exc_info=True)

    async def start(self, timeout: float | None = None) -> bool:
        """Connect, waiting at most ``timeout`` seconds (one attempt's time by default);
        if no server answers by then, keep trying in the background. Returns
        whether it is connected."""
        if self._closed:
            raise TransportClosedError("transport is closed")
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect(), name="edda-nats-connect")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout + 0.5 if timeout is None
                                       else timeout):
                await self._ready.wait()
        if not self.connected:
            self._late = True
            log.warning("cannot reach NATS at %s; this node works through the database "
                        "until it can, and keeps trying", ", ".join(self.servers))
        return self.connected

    async def _connect(self) -> None:
        import nats

        options: dict[str, Any] = {
            "servers": self.servers, "name": self.name, "allow_reconnect": True,
            "max_reconnect_attempts": -1, "reconnect_time_wait": self._reconnect_wait,
            "connect_timeout": self._connect_timeout, "ping_interval": 5,
            "max_outstanding_pings": 2, "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        delay = self._reconnect_wait
        while not self._closed:
            try:  # nats-py itself keeps trying every server until one answers
                nc = await nats.connect(**options)
            except Exception as exc:
                log.debug("connecting to NATS failed: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self._nc = nc  # (closing cancels this task, so the transport is open here)
            for sub in list(self._subs):
                await self._attach(sub)
            if self._late:
                log.warning("reached NATS at %s", nc.connected_url.netloc
                            if nc.connected_url else "?")
                self._gap("connected to NATS late")
            self._ready.set()
            return

    async def _on_error(self, exc: Exception) -> None:
        from nats.errors import SlowConsumerError

        if isinstance(exc, SlowConsumerError):
            log.warning("NATS dropped messages for a slow consumer on %s; sweeping the "
                        "database for what they announced", exc.subject)
            self._gap("slow consumer")
        else:
            log.debug("NATS connection error: %r", exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("lost the connection to NATS; reconnecting (meanwhile other "
                        "nodes' news reaches this one through the database)")

    async def _on_reconnected(self) -> None:
        nc = self._nc
        url = nc.connected_url.netloc if nc is not None and nc.connected_url else "?"
        log.warning("reconnected to NATS at %s", url)
        self._gap("reconnected to NATS")

    async def _attach(self, sub: _NatsSubscription) -> None:
        nc = self._nc
        if nc is None or sub.closed or sub.handle is not None:
            return

        async def receive(msg: Msg) -> None:
            sub.offer(Message(msg.subject, msg.data, dict(msg.headers or {}),
                              msg.reply or None, self._respond))

        try:
            sub.handle = await nc.subscribe(sub.subject, queue=sub.queue or "", cb=receive)
        except Exception:
            log.warning("could not subscribe to %s on NATS", sub.subject, exc_info=True)

    # -- the Transport protocol ---------------------------------------------------------

    def _client(self) -> Client | None:
        if self._closed:
            raise TransportClosedError("transport is closed")
        return self._nc

    async def publish(
        self, subject: str, data: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``data`` to ``subject`` (dropped, and reported as a gap, when no
        server can take it)."""
        validate_subject(subject)
        nc = self._client()
        if nc is None:
            return  # not connected yet: the others find it at their sweep
        try:
            await nc.publish(subject, bytes(data), headers=dict(headers) if headers else None)
        except Exception as exc:
            if self._closed:
                raise TransportClosedError("transport is closed") from None
            log.debug("a NATS publish on %s was dropped: %r", subject, exc)
            self._gap("a publish was dropped")

    async def _respond(self, reply: str, data: bytes) -> None:
        nc = self._client()
        if nc is not None:
            try:
                await nc.publish(reply, data)
            except Exception as exc:  # the asker times out, as if it was lost
                log.debug("a NATS reply on %s was dropped: %r", reply, exc)

    async def flush(self) -> None:
        """Wait (a second at most) until the server has everything sent so far, such
        as new subscriptions; nothing to wait for while disconnected."""
        nc = self._nc
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=1)

    @asynccontextmanager
    async def subscribe(
        self, subject: str, *, queue: str | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a subject pattern, optionally as a member of a queue group.
        The server knows of the subscription when this returns (if connected)."""
        validate_subject(subject, pattern=True)
        if queue is not None:
            validate_subject(queue)
        nc = self._client()
        sub = _NatsSubscription(subject, queue, asyncio.Queue(self._buffer), self._gap)
        self._subs.append(sub)
        try:
            if nc is not None:
                await self._attach(sub)  # the server has it before what is published next
            yield sub
        finally:
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)
            sub.end()
            if sub.handle is not None and not self._closed:
                with contextlib.suppress(Exception):
                    await sub.handle.unsubscribe()

    async def request(self, subject: str, data: bytes, *, timeout: float) -> Message:
        """Send a request and wait for the first reply.

        Raises:
            NoRespondersError: At once, when nobody subscribes to ``subject``.
            TimeoutError: If nobody answers within ``timeout`` seconds, or NATS
                cannot be reached.
        """
        from nats.errors import NoRespondersError as NatsNoResponders
        from nats.errors import TimeoutError as NatsTimeout

        validate_subject(subject)
        nc = self._client()
        if nc is None or not nc.is_connected:
            raise TimeoutError(f"NATS is not reachable for a request on {subject!r}")
        try:
            msg = await nc.request(subject, bytes(data), timeout=timeout)
        except NatsNoResponders:
            raise NoRespondersError(f"no responders on {subject!r}") from None
        except NatsTimeout:
            raise TimeoutError(f"no answer on {subject!r} within {timeout:g} s") from None
        except Exception as exc:  # the connection dropped meanwhile, a full buffer, ...
            if self._closed:
                raise TransportClosedError("transport is closed") from None
            raise TimeoutError(f"no answer on {subject!r}: {exc!r}") from None
        return Message(msg.subject, msg.data, dict(msg.headers or {}), None, None)

    async def aclose(self) -> None:
        """Send what is queued (for at most a second), close the connection and end
        every subscription's iteration."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subs:
            sub.end()
        self._subs.clear()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(BaseException):
                await self._connecting
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.flush(), _LAST_FLUSH)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), _LAST_FLUSH)


def _check_server(server: str) -> str:
    """The scheme of one server URL; a ``ValueError`` that says what is wrong with it
    if the client could never connect to it (it would otherwise retry for ever)."""
    url = server if "://" in server else f"nats://{server}"
    problem = None
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("nats", "tls", "ws", "wss"):
            problem = f"the scheme {parts.scheme!r} is not nats, tls, ws or wss"
        elif not parts.hostname:
            problem = "it names no host"
    if problem is not None:
        raise ValueError(f"nats_url {server!r} is not a NATS server URL: {problem}; "
                         "write it as nats://host:4222")
    return parts.scheme
