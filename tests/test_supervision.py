"""The supervisor, recovery of unknown workflows, non-determinism, replayed failures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import edda.runtime.instances as instances_module
from edda import EddaApp, NonDeterminismError, TerminalError, WorkflowContext, activity, workflow
from edda.runtime import registry
from edda.testing import sweep_now
from tests.support.gates import finished, interrupt_and_restart
from tests.test_workflows import GATES, _wait_completed, add, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


@workflow
async def supervised_wf(ctx: WorkflowContext) -> int:
    return await add(ctx, 20, 22)


async def test_runtime_crash_restarts_actor_from_journal(
    sqlite_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    app.supervisor.backoff_initial = 0.001
    await app.initialize()
    real = instances_module.run_workflow
    failures = iter([True, True])

    async def flaky_run(*args: Any, **kwargs: Any) -> Any:
        if next(failures, False):
            raise ConnectionError("database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(instances_module, "run_workflow", flaky_run)
    iid = await supervised_wf.start()
    assert app.supervisor.restarts == 2
    inst = await app.get_instance(iid)
    assert inst is not None and inst["output_data"] == {"result": 42}


async def test_actor_that_keeps_crashing_is_parked_failed(
    sqlite_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(sqlite_url)
    app.supervisor.backoff_initial = 0.001
    app.supervisor.max_restarts = 3
    await app.initialize()
    real = instances_module.run_workflow
    broken: set[str] = set()

    async def failing_run(wf: Any, actor: Any, **kwargs: Any) -> Any:
        if actor.instance_id in broken or not broken:
            broken.add(actor.instance_id)
            raise ValueError("corrupt page")
        return await real(wf, actor, **kwargs)

    monkeypatch.setattr(instances_module, "run_workflow", failing_run)
    with pytest.raises(ValueError, match="corrupt page"):
        await supervised_wf.start()
    (bad_id,) = broken
    inst = await app.get_instance(bad_id)
    assert inst is not None and inst["status"] == "failed"
    assert inst["output_data"]["error_message"] == "corrupt page"
    ok_id = await supervised_wf.start()
    assert (await app.get_instance(ok_id))["status"] == "completed"  # type: ignore[index]


async def test_unknown_workflow_at_recovery_is_logged_once(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    @workflow
    async def ghost_wf(ctx: WorkflowContext) -> None:
        await gate(ctx, "ghost")

    def forget_ghost() -> None:
        registry.DEFAULT.remove_workflow("ghost_wf")

    try:
        with caplog.at_level(logging.ERROR, logger="edda.recovery"):
            app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "ghost",
                                                  ghost_wf.start, between=forget_ghost)
            await sweep_now(app2)
            await sweep_now(app2)
        messages = [r.getMessage() for r in caplog.records if "ghost_wf" in r.getMessage()]
        assert len(messages) == 1 and "not registered" in messages[0]
        found = await app2.find_instances(workflow_name="ghost_wf")
        assert found["instances"][0]["status"] == "running"
    finally:
        registry.register_workflow(ghost_wf)


async def test_changed_code_raises_non_determinism_and_parks(
    sqlite_url: str, make_app: MakeApp
) -> None:
    @workflow
    async def evolving_wf(ctx: WorkflowContext) -> int:
        await add(ctx, 1, 1)
        await gate(ctx, "evolving")
        return 0

    def deploy_changed_code() -> None:
        registry.DEFAULT.remove_workflow("evolving_wf")  # the old code is gone

        @workflow
        async def evolving_wf(ctx: WorkflowContext) -> int:
            try:
                await gate(ctx, "changed")  # the journal has add:1 as call 0
            except Exception:
                pass  # swallowing it must not hide the error
            return 1

    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "evolving",
                                          evolving_wf.start, between=deploy_changed_code)
    (found,) = (await app2.find_instances(workflow_name="evolving_wf"))["instances"]
    inst = await finished(app2, found["instance_id"], statuses=("failed",))
    assert inst["output_data"]["error_type"] == "NonDeterminismError"
    message = inst["output_data"]["error_message"]
    assert "at gate:1" in message and "'add' at add:1" in message and "'gate'" in message
    assert issubclass(NonDeterminismError, Exception)


class OutOfStock(TerminalError):
    pass


@activity
async def reserve(ctx: WorkflowContext, sku: str) -> None:
    raise OutOfStock(f"no {sku} left")


@workflow
async def catching_wf(ctx: WorkflowContext) -> str:
    try:
        await reserve(ctx, "widget")
    except OutOfStock as exc:
        caught = f"caught {type(exc).__name__}: {exc}"
    await gate(ctx, "catching")
    return caught


async def test_cached_failure_replays_as_its_own_type(sqlite_url: str, make_app: MakeApp) -> None:
    app2, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "catching",
                                          catching_wf.start)
    assert await _wait_completed(app2, "catching_wf") == "caught OutOfStock: no widget left"


async def test_shutdown_hands_instances_to_the_next_node(sqlite_url: str, make_app: MakeApp) -> None:
    @workflow
    async def handover_wf(ctx: WorkflowContext) -> str:
        return await gate(ctx, "handover")

    app2, outcome = await interrupt_and_restart(make_app, sqlite_url, GATES, "handover",
                                                handover_wf.start)
    assert isinstance(outcome, RuntimeError)
    assert await _wait_completed(app2, "handover_wf") == "handover"
    inst = (await app2.find_instances(workflow_name="handover_wf"))["instances"][0]
    assert inst["locked_by"] == app2.worker_id and inst["epoch"] == 2
