"""Bridged transports: what one process publishes reaches the others on the same
database (sockets beside a SQLite file, LISTEN/NOTIFY on PostgreSQL), once each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from edda.transports.bells import PgBell, SocketBell, bell_directory
from edda.transports.bridge import BridgedTransport

pytestmark = pytest.mark.anyio


async def _two_processes_worth(make: Callable[[], BridgedTransport]) -> None:
    here, there = make(), make()
    await here.start()
    await there.start()
    try:
        async with here.subscribe("edda.instance.*.wake") as mine, \
                there.subscribe("edda.instance.*.wake") as theirs:
            for n in range(3):
                await here.publish(f"edda.instance.i{n}.wake", b"")
            for n in range(3):
                assert (await theirs.next(timeout=5)).subject == f"edda.instance.i{n}.wake"
                assert (await mine.next(timeout=5)).subject == f"edda.instance.i{n}.wake"
            with pytest.raises(TimeoutError):  # nothing echoed back, nothing twice
                await mine.next(timeout=0.2)
            with pytest.raises(TimeoutError):
                await theirs.next(timeout=0.2)
    finally:
        await here.aclose()
        await there.aclose()


async def test_sockets_beside_a_sqlite_file_reach_the_other_processes(tmp_path: Path) -> None:
    directory = bell_directory(str(tmp_path / "edda.db"))
    await _two_processes_worth(lambda: BridgedTransport(SocketBell(directory)))


@pytest.mark.postgres
async def test_listen_notify_reaches_the_other_processes(postgres_url: str) -> None:
    await _two_processes_worth(lambda: BridgedTransport(PgBell(postgres_url)))


async def test_a_bell_that_cannot_start_leaves_the_transport_in_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    transport = BridgedTransport(SocketBell(blocker / "bell"))
    with caplog.at_level(logging.WARNING, logger="edda.transports"):
        await transport.start()
    assert any("cannot reach the other processes" in r.getMessage() for r in caplog.records)
    try:
        async with transport.subscribe("edda.nodes") as sub:
            await transport.publish("edda.nodes", b"x")
            assert (await sub.next(timeout=5)).data == b"x"
    finally:
        await transport.aclose()
