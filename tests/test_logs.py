"""What goes wrong is logged once, at a fitting level, through ``edda.*`` loggers,
naming the workflow and the instance; a healthy load logs nothing per instance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

import edda.runtime.instances as instances_module
from edda import (
    EddaApp,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from edda.runtime import registry
from tests.support.gates import finished, interrupt_and_restart
from tests.test_workflows import GATES, add, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


def said(caplog: pytest.LogCaptureFixture, *parts: str) -> list[logging.LogRecord]:
    """The ``edda.*`` records whose message holds every one of ``parts``."""
    return [r for r in caplog.records if r.name.startswith("edda")
            and all(p in r.getMessage() for p in parts)]


@activity
async def declines(ctx: WorkflowContext) -> None:
    raise ValueError("card expired")


@workflow
async def pays(ctx: WorkflowContext) -> None:
    await declines(ctx)


async def test_a_failed_workflow_is_logged_once_with_its_traceback(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url, default_retry_policy=RetryPolicy(max_attempts=1))
    await app.initialize()
    with caplog.at_level(logging.INFO, "edda"), pytest.raises(Exception, match="attempts"):
        await pays.start(instance_id="pays-1")
    (record,) = said(caplog, "workflow pays pays-1 failed")
    assert record.levelno == logging.WARNING and record.name == "edda.saga"
    assert record.exc_info is not None  # the traceback goes with it


FLAKY_CALLS: list[int] = []


@activity(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.001))
async def partner(ctx: WorkflowContext) -> str:
    FLAKY_CALLS.append(1)
    if len(FLAKY_CALLS) < 3:
        raise ConnectionError("partner busy")
    return "ok"


@workflow
async def calls_partner(ctx: WorkflowContext) -> str:
    return await partner(ctx)


async def test_each_retry_of_an_activity_is_logged_at_info(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    FLAKY_CALLS.clear()
    with caplog.at_level(logging.INFO, "edda"):
        await calls_partner.start(instance_id="partner-1")
        assert await app.wait_result("partner-1", timeout=10) == "ok"
    records = said(caplog, "activity partner of workflow calls_partner partner-1 failed",
                   "ConnectionError: partner busy")
    assert [r.levelno for r in records] == [logging.INFO, logging.INFO]
    assert "(attempt 1)" in records[0].getMessage() and "(attempt 2)" in records[1].getMessage()


@compensation
async def refund(ctx: WorkflowContext) -> None:
    raise RuntimeError("refund service down")


@activity
@on_failure(refund)
async def take_money(ctx: WorkflowContext) -> str:
    return "taken"


@activity
async def ship_fails(ctx: WorkflowContext) -> None:
    raise TerminalError("no courier")


@workflow
async def sells(ctx: WorkflowContext) -> None:
    await take_money(ctx)
    await ship_fails(ctx)


async def test_a_failed_compensation_is_logged_as_an_error(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url, default_retry_policy=RetryPolicy(max_attempts=1))
    await app.initialize()
    with caplog.at_level(logging.INFO, "edda"), pytest.raises(TerminalError):
        await sells.start(instance_id="sells-1")
    (record,) = said(caplog, "compensation refund of workflow sells sells-1",
                     "RuntimeError: refund service down")
    assert record.levelno == logging.ERROR
    (failed,) = said(caplog, "workflow sells sells-1 failed", "compensations that failed")
    assert failed.exc_info is None  # a TerminalError is the workflow's own decision


async def test_an_instance_parked_for_non_determinism_says_so(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    @workflow
    async def drifting(ctx: WorkflowContext) -> int:
        await add(ctx, 1, 1)
        await gate(ctx, "drifting")
        return 0

    def deploy_changed_code() -> None:
        registry.DEFAULT.remove_workflow("drifting")  # the old code is gone

        @workflow
        async def drifting(ctx: WorkflowContext) -> int:
            await gate(ctx, "drifted")
            return 1

    with caplog.at_level(logging.INFO, "edda"):
        app, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "drifting",
                                             lambda: drifting.start(instance_id="drift-1"),
                                             between=deploy_changed_code)
        await finished(app, "drift-1", statuses=("failed",))
    (record,) = said(caplog, "workflow drifting drift-1 is parked as failed",
                     "no longer matches its journal")
    assert record.levelno == logging.ERROR


@workflow
async def restarted(ctx: WorkflowContext) -> int:
    return await add(ctx, 40, 2)


async def test_an_actor_restart_names_the_workflow_and_instance(
    sqlite_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url)
    app.supervisor.backoff_initial = 0.001
    await app.initialize()
    real = instances_module.run_workflow
    crashes = iter([True])

    async def crashes_once(*args: Any, **kwargs: Any) -> Any:
        if next(crashes, False):
            raise RuntimeError("a bug in the runtime")
        return await real(*args, **kwargs)

    monkeypatch.setattr(instances_module, "run_workflow", crashes_once)
    with caplog.at_level(logging.INFO, "edda"):
        await restarted.start(instance_id="restart-1")
        assert await app.wait_result("restart-1", timeout=10) == 42
    (record,) = said(caplog, "actor restarted restart-1 crashed", "restarting from its journal")
    assert record.levelno == logging.WARNING


@workflow
async def healthy(ctx: WorkflowContext, n: int) -> int:
    return await add(ctx, n, 1)


async def test_a_healthy_load_logs_nothing_per_instance(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    with caplog.at_level(logging.INFO, "edda"):
        ids = await asyncio.gather(*(healthy.start(n=n) for n in range(200)))
        for iid in ids:
            await finished(app, iid, statuses=("completed",))
    per_instance = [r for r in caplog.records if any(i in r.getMessage() for i in ids)]
    assert per_instance == []
