"""The node supervisor: the root of a node's supervision tree.

A node is a tree. Its root runs the node's **services** (journal writer, lease
heartbeat, transport listener, actor supervisor, recovery sweep, timer service,
outbox relayer, background work) in an anyio task group, in that order, and
waits for each to report ready (``TaskGroup.start``) before starting the next:
a database or a transport that cannot start makes `NodeSupervisor.start` raise
`ServiceStartError` naming the service, within ``start_timeout``.

A service that crashes is restarted (one_for_one, with backoff), and once it
is ready again ``on_restarted`` lets the node look for what the crash may have
dropped (a wake-up, an activation under way). Restarts are
counted per service; more than ``max_restarts`` within ``period`` seconds stops
the whole node: every service is cancelled, ``on_failure`` gives the node's
instances back, and `failure` says why. A node never runs on without a piece
of itself. A crash caused by an unavailable database (a transient fault) is
restarted without being counted: the database coming back is not a bug.

`stop` stops the services in reverse order, each first allowed to finish what
it has under way (`Service.drain`): actors before the lease that they write
under, the lease before the writer that releases it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.abc

from edda.journal.faults import describe, is_transient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from anyio.abc import TaskStatus

log = logging.getLogger("edda.node")


class Service(Protocol):
    """A long-lived part of a node."""

    #: How the node names the service in logs and errors ("journal writer").
    name: str

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Run until cancelled; call ``task_status.started()`` once ready to serve."""
        ...

    async def drain(self) -> None:
        """Finish what is under way; the node then cancels `run`."""
        ...


class ServiceStartError(RuntimeError):
    """A node service could not start; the node did not start."""

    def __init__(self, service: str, cause: BaseException | str) -> None:
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"the node's {service} could not start: {reason}")
        self.service = service


class NodeFailedError(RuntimeError):
    """A node service kept crashing, so the node stopped and gave its instances back."""

    def __init__(self, service: str, crashes: int, period: float, cause: BaseException) -> None:
        super().__init__(
            f"the node stopped because its {service} crashed {crashes} times within "
            f"{period:g} s (last: {type(cause).__name__}: {cause}); its instances were given "
            "back for other nodes, or the next start, to run")
        self.service = service
        self.__cause__ = cause


class _Status:
    """The `TaskStatus` a service gets: passes its first readiness on to the node."""

    def __init__(self, outer: TaskStatus[None] | None, on_started: Callable[[], None]) -> None:
        self._outer = outer
        self._on_started = on_started
        self.started_ = False

    def started(self, value: Any = None) -> None:
        if not self.started_:
            self.started_ = True
            if self._outer is not None:
                self._outer.started()
            self._on_started()


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class NodeSupervisor:
    """Runs a node's services as a supervision tree."""

    def __init__(
        self,
        services: Sequence[Service],
        *,
        on_failure: Callable[[BaseException], Awaitable[None]],
        on_restarted: Callable[[str], None] | None = None,
        on_failing: Callable[[], None] | None = None,
        max_restarts: int = 5,
        period: float = 60.0,
        start_timeout: float = 30.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        self.services = list(services)
        self._on_failure = on_failure
        self._on_restarted = on_restarted
        self._on_failing = on_failing
        self.max_restarts = max_restarts
        self.period = period
        self.start_timeout = start_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._ended: dict[str, anyio.Event] = {}
        self._killed: set[str] = set()
        self._stop = asyncio.Event()
        self._root: asyncio.Task[None] | None = None
        #: Why the node stopped on its own, if it did.
        self.failure: BaseException | None = None
        #: Restarts per service, and how often each reported ready (tools and tests).
        self.restarts: dict[str, int] = {}
        self.starts: dict[str, int] = {}
        self._progress = asyncio.Event()
        self._up: set[str] = set()
        self._done = False
        self._stopping: set[str] = set()

    async def start(self) -> None:
        """Start every service in order; return once all are ready.

        Raises:
            ServiceStartError: Naming the service that failed or did not report
                ready within ``start_timeout``; everything started is stopped again.
        """
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # The root of the tree is the one task the node starts by hand; everything
        # else lives in its task group and ends with it.
        self._root = asyncio.create_task(self._run(ready), name="edda-node")
        try:
            await ready
        except BaseException:
            await self._join()
            raise

    async def stop(self) -> None:
        """Stop the services in reverse order (each drained first) and wait for them."""
        self._stop.set()
        await self._join()

    async def _join(self) -> None:
        root = self._root
        if root is not None:
            await asyncio.gather(root, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._root is not None and not self._done

    async def started_again(self, name: str, after: int) -> None:
        """Wait until ``name`` has reported ready more than ``after`` times, or the node
        has stopped."""
        while self.starts.get(name, 0) <= after and self.running:
            await self._progress.wait()

    def _changed(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def kill(self, name: str) -> None:
        """Crash a service as if it had failed (for tests of supervision)."""
        scope = self._scopes.get(name)
        if scope is None or name not in self._up:
            raise LookupError(f"no running service named {name!r}")
        self._killed.add(name)
        self._up.discard(name)
        scope.cancel()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            await self._tree(ready)
        finally:
            self._done = True
            self._changed()

    async def _tree(self, ready: asyncio.Future[None]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                started: list[Service] = []
                try:
                    for service in self.services:
                        await self._start_one(tg, service)
                        started.append(service)
                except BaseException:
                    for service in reversed(started):  # e.g. the lease row goes again
                        await self._stop_one(service)
                    raise
                ready.set_result(None)
                await self._stop.wait()
                for service in reversed(self.services):
                    await self._stop_one(service)
        except BaseException as exc:
            error = _unwrap(exc)
            if not ready.done():
                ready.set_exception(error if isinstance(error, Exception)
                                    else RuntimeError(f"the node did not start: {error!r}"))
                return
            if isinstance(error, asyncio.CancelledError):
                raise
            self.failure = error
            log.error("%s", error)
            try:
                await self._on_failure(error)
            except Exception:
                log.exception("could not give the node's instances back")

    async def _start_one(self, tg: anyio.abc.TaskGroup, service: Service) -> None:
        try:
            with anyio.fail_after(self.start_timeout):
                await tg.start(self._supervise, service)
        except TimeoutError:
            raise ServiceStartError(service.name, f"it did not report ready within "
                                                  f"{self.start_timeout:g} s") from None
        except ServiceStartError:
            raise
        except Exception as exc:
            raise ServiceStartError(service.name, _unwrap(exc)) from exc

    async def _stop_one(self, service: Service) -> None:
        self._stopping.add(service.name)  # a service between restarts is not restarted
        try:
            await service.drain()
        except Exception:
            log.exception("the node's %s did not finish cleanly", service.name)
        scope = self._scopes.get(service.name)
        if scope is not None:
            scope.cancel()
        ended = self._ended.get(service.name)
        if ended is not None:
            await ended.wait()

    async def _supervise(self, service: Service, *,
                         task_status: TaskStatus[None]) -> None:
        name = service.name
        crashes: deque[float] = deque()
        delay = self.backoff_initial
        first = True
        ended = self._ended[name] = anyio.Event()
        pause = 0.0
        try:
            while name not in self._stopping:
                def ready(again: bool = not first) -> None:
                    self.starts[name] = self.starts.get(name, 0) + 1
                    self._up.add(name)
                    if again and self._on_restarted is not None:
                        self._on_restarted(name)  # what it missed meanwhile is found again
                    self._changed()

                status = _Status(task_status if first else None, ready)
                scope = self._scopes[name] = anyio.CancelScope()
                try:
                    try:
                        with scope:
                            if pause:  # the backoff: stopping the node cancels it too
                                await anyio.sleep(pause)
                            await service.run(task_status=status)
                    finally:
                        self._up.discard(name)
                    if name not in self._killed or name in self._stopping:
                        return  # stopped by the node, or done
                    self._killed.discard(name)
                    error: BaseException = RuntimeError(f"the {name} was killed")
                except Exception as exc:
                    error = exc
                    self._killed.discard(name)
                    if first and not status.started_:
                        raise ServiceStartError(name, exc) from exc
                first = False
                if is_transient(error):
                    log.warning("the node's %s paused: the database is unavailable (%s); "
                                "restarting it", name, describe(error))
                else:
                    now = time.monotonic()
                    crashes.append(now)
                    while crashes and crashes[0] < now - self.period:
                        crashes.popleft()
                    if len(crashes) > self.max_restarts:
                        if self._on_failing is not None:
                            self._on_failing()  # e.g. the writer stops waiting for a database
                        raise NodeFailedError(name, len(crashes), self.period, error)
                    log.error("the node's %s crashed; restarting it (%d of %d restarts "
                              "allowed within %g s)", name, len(crashes), self.max_restarts,
                              self.period, exc_info=error)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                pause = delay
                delay = min(delay * 2, self.backoff_max)
        finally:
            self._scopes.pop(name, None)
            ended.set()
            self._changed()
