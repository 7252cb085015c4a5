"""Gates that hold a workflow inside an activity until the test says so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class Gate:
    """An activity calls ``await gate.hold()``; the test waits on ``reached``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.holds = 0
        self._open = asyncio.Event()

    async def hold(self) -> None:
        self.holds += 1
        self.reached.set()
        await self._open.wait()

    def open(self) -> None:
        self._open.set()


async def wait_for(event: asyncio.Event, timeout: float = 10.0) -> None:
    """Wait for ``event``, failing the test with a clear message on timeout."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"condition not reached within {timeout}s") from None


async def wait_until(predicate: Callable[[], Awaitable[bool] | bool], what: str,
                     timeout: float = 10.0) -> None:
    """Poll a condition (async or not) until it holds, failing clearly on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        answer = predicate()
        if answer if isinstance(answer, bool) else await answer:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def finished(app: Any, instance_id: str, timeout: float = 10.0,
                   statuses: tuple[str, ...] = ("completed", "failed")) -> dict[str, Any]:
    """The instance once it has ended (`EddaApp.wait_result`), failing clearly on
    timeout or when it ended otherwise than with one of ``statuses``."""
    try:
        await app.wait_result(instance_id, timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"{instance_id} did not end within {timeout}s") from None
    except Exception:  # it failed or was cancelled: its row says how
        pass
    inst: dict[str, Any] = await app.get_instance(instance_id)
    assert inst["status"] in statuses, f"{instance_id} ended {inst['status']}: {inst}"
    return inst


async def settle(task: Awaitable[object]) -> BaseException | object:
    """The result or the exception of an awaitable."""
    try:
        return await task
    except BaseException as exc:
        return exc


async def interrupt_and_restart(
    make_app: Callable[..., Any],
    db_url: str,
    gates: dict[str, Gate],
    key: str,
    start: Callable[[], Awaitable[object]],
    *,
    between: Callable[[], None] | None = None,
    **app_kwargs: Any,
) -> tuple[Any, BaseException | object]:
    """Run ``start()`` on a node until it holds at gate ``key``, shut that node down
    (its instance stays unfinished), then start a fresh node on the same database.

    Returns:
        The fresh, initialised app, and what ``start()`` ended with on the first node.
    """
    gates[key] = Gate()
    first = make_app(db_url, **app_kwargs)
    await first.initialize()
    task = asyncio.create_task(start())  # type: ignore[arg-type]
    await wait_for(gates[key].reached)
    await first.shutdown()
    outcome = await settle(task)
    del gates[key]
    if between is not None:
        between()
    second = make_app(db_url, **app_kwargs)
    await second.initialize()
    return second, outcome
