"""``sqlite:///:memory:`` works for tests in one process, as in Edda: each app has a
private database that is gone with it, and a warning says once that it keeps nothing."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

import edda.journal.database as database_module
from edda import EddaApp, WorkflowContext, activity, workflow

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


@activity
async def double(ctx: WorkflowContext, n: int) -> int:
    return n * 2


@workflow
async def doubles(ctx: WorkflowContext, n: int) -> int:
    return await double(ctx, n)


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"])
async def test_an_in_memory_database_runs_workflows(
    url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "_warned_memory", False)
    with caplog.at_level(logging.WARNING, "edda"):
        first, second = make_app(url), make_app(url)
    warnings = [r for r in caplog.records if "in-memory database keeps nothing" in r.getMessage()]
    assert len(warnings) == 1  # once per process, not once per app
    await first.initialize()
    await second.initialize()
    iid = await first.start_workflow(doubles, n=21)
    assert await first.wait_result(iid, timeout=10) == 42
    # Each app has its own database, as two in-memory SQLite databases would.
    assert await second.get_instance(iid) is None
    # A shutdown and a new initialize of the same app keep its data.
    await first.shutdown()
    await first.initialize()
    assert (await first.get_instance(iid) or {})["status"] == "completed"


async def test_the_stand_in_file_goes_with_the_app() -> None:
    app = EddaApp("memory", "sqlite:///:memory:")
    folder = Path(app.db_url.removeprefix("sqlite+aiosqlite:///").removeprefix("sqlite:///")
                  ).parent
    await app.initialize()
    assert await doubles.start(n=1)
    await app.shutdown()
    assert folder.is_dir()
    del app
    gc.collect()
    assert not folder.exists()
