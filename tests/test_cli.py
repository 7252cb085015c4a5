"""The `edda` command, run as a real process against a database that a live node of
this test uses at the same time (SQLite file and PostgreSQL).

The node's sweep runs once a minute here, so an instance that a `cancel` or
`retry` changes within seconds was woken by the command's mail to its owner.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from edda import EddaApp, RetryPolicy, WorkflowContext, activity, send_event, wait_event, workflow
from tests.support.cluster import ROOT
from tests.support.gates import finished, wait_until
from tests.support.natsserver import NatsServer

pytestmark = pytest.mark.anyio

#: The console script the package installs, beside this interpreter.
SCRIPT = Path(sys.executable).with_name("edda")
#: The node's safety sweep: slower than any wait below.
QUIET = {"recovery_interval": 60.0}
_flaky_calls: dict[str, int] = {}
_broken = {"on": True}


@activity(retry_policy=RetryPolicy(max_attempts=3, initial_interval=0.01))
async def cli_flaky(ctx: WorkflowContext, key: str) -> str:
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] < 3:
        raise ConnectionError(f"partner down (call {_flaky_calls[key]})")
    return f"ok-{key}"


@activity(retry_policy=RetryPolicy(max_attempts=1))
async def cli_charge(ctx: WorkflowContext, amount: int) -> int:
    if _broken["on"]:
        raise ValueError(f"card declined for {amount}")
    return amount


@workflow
async def cli_journey(ctx: WorkflowContext, key: str) -> int:
    await cli_flaky(ctx, key)
    approval = await wait_event(ctx, f"cli.approved.{key}", timeout_seconds=60)
    return await cli_charge(ctx, approval.data["amount"])


@workflow
async def cli_quick(ctx: WorkflowContext, n: int) -> int:
    return n * 2


@workflow
async def cli_waiter(ctx: WorkflowContext, key: str) -> str:
    await wait_event(ctx, f"cli.never.{key}", timeout_seconds=3600)
    return "woken"


async def edda(*args: str, db: str | None = None, script: bool = False,
               cwd: Path | None = None, nats: str | None = None) -> tuple[int, str, str]:
    """Run the command; its exit code, stdout and stderr. ``db`` goes in $EDDA_DB_URL,
    ``nats`` in $EDDA_NATS_URL."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("EDDA_DB_URL", "EDDA_NATS_URL", "EDDA_DEBUG")}
    if db is not None:
        env["EDDA_DB_URL"] = db
    if nats is not None:
        env["EDDA_NATS_URL"] = nats
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "edda.cli"]
    proc = await asyncio.create_subprocess_exec(
        *command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=cwd or tempfile.gettempdir())
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _one_line_error(err: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


async def _status(app: EddaApp, instance_id: str) -> str:
    inst = await app.get_instance(instance_id)
    assert inst is not None
    return str(inst["status"])


# -- list ------------------------------------------------------------------------------

async def test_list_filters_instances_of_a_live_node(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url, **QUIET)
    await app.initialize()
    quick = [await cli_quick.start(n=n) for n in range(3)]
    waiting = await cli_waiter.start(key="list")
    _broken["on"] = True
    key = f"list{uuid.uuid4().hex[:8]}"
    failed = await cli_journey.start(key=key)
    await send_event(f"cli.approved.{key}", "test", {"amount": 5})
    await finished(app, failed, statuses=("failed",))

    code, out, err = await edda("list", "--json", db=db_url, script=True)
    assert code == 0, err
    listed = {i["instance_id"]: i for i in json.loads(out)}
    assert set(listed) == {*quick, waiting, failed}
    assert listed[waiting]["status"] == "waiting_for_message"  # as Edda says it

    code, out, _ = await edda("list", "--json", "--status", "failed", "--db", db_url)
    assert [i["instance_id"] for i in json.loads(out)] == [failed]
    code, out, _ = await edda("list", "--json", "--workflow", "cli_quick", "--db", db_url)
    assert {i["instance_id"] for i in json.loads(out)} == set(quick)
    code, out, _ = await edda("list", "--json", "--limit", "2", "--db", db_url)
    assert len(json.loads(out)) == 2
    code, out, _ = await edda("list", "--json", "--since", "1h", "--db", db_url)
    assert len(json.loads(out)) == 5
    code, out, _ = await edda("list", "--json", "--until", "1h", "--db", db_url)
    assert json.loads(out) == []
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    code, out, _ = await edda("list", "--json", "--since", later, "--db", db_url)
    assert code == 0 and json.loads(out) == []

    code, out, err = await edda("list", "--workflow", "cli_", db=db_url)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["INSTANCE", "WORKFLOW", "STATUS", "STARTED", "(UTC)", "UPDATED",
                              "(UTC)"]
    assert len(rows) == 5
    column = header.index("STATUS")
    for row in rows:  # aligned: each status starts under the header
        assert row[column - 1] == " " and row[column] != " ", row
    assert any(failed in row and " failed " in row for row in rows)


# -- show ------------------------------------------------------------------------------

async def test_show_reads_the_journal_as_a_timeline(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url, **QUIET)
    await app.initialize()
    _broken["on"] = True
    key = f"show{uuid.uuid4().hex[:8]}"
    instance_id = await cli_journey.start(key=key)
    assert await _status(app, instance_id) == "waiting_for_message"
    await send_event(f"cli.approved.{key}", "test", {"amount": 42})
    await finished(app, instance_id, statuses=("failed",))

    code, out, err = await edda("show", instance_id, "--json", db=db_url)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["instance"]["status"] == "failed"
    steps = {(s["kind"], s["status"]): s for s in shown["timeline"]}
    flaky = steps["activity", "completed"]
    assert flaky["name"] == "cli_flaky" and flaky["attempts"] == 3
    assert [r["error_type"] for r in flaky["retries"]] == ["ConnectionError"] * 2
    event = steps["event", "received"]
    assert event["detail"]["event"]["data"] == {"amount": 42}
    assert event["duration_ms"] is not None and event["started_at"] is not None
    charge = steps["activity", "failed"]
    assert "card declined for 42" in charge["detail"]["error"]["traceback"]
    assert steps["workflow", "failed"]["detail"]["error"]["type"] == "RetryExhaustedError"

    code, out, err = await edda("show", instance_id, "--db", db_url)
    assert code == 0, err
    assert "status    failed" in out
    assert f'cli_flaky("{key}") -> "ok-{key}" (3 attempts)' in out
    assert "attempt 2 failed: ConnectionError: partner down (call 2)" in out
    assert f"received event 'cli.approved.{key}' from test after waiting" in out
    assert "Traceback (most recent call last)" in out
    assert "ValueError: card declined for 42" in out


# -- cancel ------------------------------------------------------------------------------

@pytest.mark.parametrize("idle_seconds", [5.0, 0.0], ids=["resident", "passivated"])
async def test_cancel_reaches_the_live_node_at_once(
    db_url: str, make_app: Callable[..., EddaApp], idle_seconds: float
) -> None:
    app = make_app(db_url, idle_seconds=idle_seconds, **QUIET)
    await app.initialize()
    instance_id = await cli_waiter.start(key=uuid.uuid4().hex)
    code, out, err = await edda("cancel", instance_id, "--by", "ops", "--db", db_url)
    assert code == 0, err
    assert f"node {app.worker_id} is cancelling it now" in out, (out, err)
    # The sweep runs once a minute: only the command's mail explains a prompt cancel.
    await wait_until(lambda: _cancelled(app, instance_id), "the cancel to land", timeout=10)
    inst = await app.get_instance(instance_id)
    assert inst is not None and inst["output_data"]["cancelled_by"] == "ops"

    code, _, err = await edda("cancel", instance_id, "--db", db_url)
    assert code == 1
    assert "cannot be cancelled" in err
    _one_line_error(err)


async def _cancelled(app: EddaApp, instance_id: str) -> bool:
    return await _status(app, instance_id) == "cancelled"


async def test_cancel_with_no_node_running_is_stored_for_later(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url, **QUIET)
    await app.initialize()
    instance_id = await cli_waiter.start(key="later")
    await app.shutdown()
    code, out, err = await edda("cancel", instance_id, "--db", db_url)
    assert code == 0, err
    assert "no node runs it now" in out
    successor = make_app(db_url, **QUIET)
    await successor.initialize()
    await wait_until(lambda: _cancelled(successor, instance_id), "the stored cancel", timeout=10)


@pytest.mark.nats
@pytest.mark.postgres
async def test_cancel_reaches_a_node_clustered_over_nats(
    postgres_url: str, nats_server: NatsServer, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(postgres_url, nats_url=nats_server.url, **QUIET)
    await app.initialize()
    first = await cli_waiter.start(key=uuid.uuid4().hex)
    second = await cli_waiter.start(key=uuid.uuid4().hex)
    code, out, err = await edda("cancel", first, "--db", postgres_url,
                                "--nats", nats_server.url)
    assert code == 0 and f"node {app.worker_id} is cancelling it now" in out, err
    code, out, err = await edda("cancel", second, "--db", postgres_url, nats=nats_server.url)
    assert code == 0 and f"node {app.worker_id} is cancelling it now" in out, err
    for instance_id in (first, second):  # the node hears NATS only, and sweeps once a minute
        await wait_until(functools.partial(_cancelled, app, instance_id),
                         "the cancel over NATS", timeout=5)


# -- retry -------------------------------------------------------------------------------

async def test_retry_runs_a_failed_instance_again(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url, **QUIET)
    await app.initialize()
    _broken["on"] = True
    key = f"retry{uuid.uuid4().hex[:8]}"
    instance_id = await cli_journey.start(key=key)
    await send_event(f"cli.approved.{key}", "test", {"amount": 7})
    await finished(app, instance_id, statuses=("failed",))

    _broken["on"] = False
    try:
        code, out, err = await edda("retry", instance_id, "--db", db_url)
        assert code == 0, err
        assert f"node {app.worker_id} is running it now" in out

        async def completed() -> bool:
            return await _status(app, instance_id) == "completed"

        await wait_until(completed, "the retried instance to complete", timeout=5)
    finally:
        _broken["on"] = True
    assert await app.wait_result(instance_id, timeout=5) == 7
    assert _flaky_calls[key] == 3  # the completed step was not run again

    code, out, err = await edda("show", instance_id, "--json", "--db", db_url)
    steps = json.loads(out)["timeline"]
    retry = next(s for s in steps if s["kind"] == "retry")
    failed = next(s for s in steps if s["kind"] == "activity" and s["status"] == "failed")
    assert failed["detail"]["superseded_by"] == retry["seq"]
    assert steps[-1]["kind"] == "workflow" and steps[-1]["status"] == "completed"

    code, _, err = await edda("retry", instance_id, "--db", db_url)
    assert code == 1 and "only a failed instance can be retried" in err
    _one_line_error(err)


# -- mistakes ----------------------------------------------------------------------------

async def test_unknown_instances_are_refused(
    db_url: str, make_app: Callable[..., EddaApp]
) -> None:
    app = make_app(db_url, **QUIET)
    await app.initialize()
    for command in ("show", "cancel", "retry"):
        code, out, err = await edda(command, "no-such-instance", "--db", db_url)
        assert code == 1, (command, out, err)
        assert "no workflow instance 'no-such-instance'" in err
        _one_line_error(err)


async def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://edda:s3cret-pw@127.0.0.1:{port}/edda"
    code, _, err = await edda("list", "--db", url)
    assert code == 1
    assert f"cannot reach the database at postgresql://edda:***@127.0.0.1:{port}/edda" in err
    assert "s3cret-pw" not in err
    _one_line_error(err)


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = await edda("list")
    assert code == 2 and "pass --db URL or set EDDA_DB_URL" in err
    code, _, err = await edda("list", "--db", "mysql://u:pw@host/db")
    assert code == 2 and "not supported" in err and "Traceback" not in err
    code, _, err = await edda("list", "--since", "last tuesday", db=f"sqlite:///{tmp_path}/x.db")
    assert code == 2 and "neither a time ago" in err
    code, _, err = await edda("serve", "not a module", "--port", "1")
    assert code == 2 and "is not module:app" in err
    missing = tmp_path / "missing.db"
    code, _, err = await edda("list", "--db", f"sqlite:///{missing}")
    assert code == 1 and f"there is no database file '{missing}'" in err
    (tmp_path / "empty.db").touch()
    code, _, err = await edda("show", "x", "--db", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1 and "is not an Edda database" in err
    _one_line_error(err)


# -- serve and viewer --------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serving(args: list[str], port: int, log: Path, db: str | None = None
                   ) -> tuple[str, dict[str, Any], int]:
    """Run ``edda *args`` until it answers /health; then SIGINT it. Its first line of
    stdout, the health answer and its exit code."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDDA_DB_URL", "EDDA_DEBUG")}
    if db is not None:
        env["EDDA_DB_URL"] = db
    with log.open("wb") as errors:
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=errors, env=env,
            cwd=ROOT)
        try:
            assert proc.stdout is not None
            first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            health: dict[str, Any] = {}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def answers() -> bool:
                    try:
                        reply = await client.get("/health")
                    except httpx.TransportError:
                        return False
                    health.update(reply.json())
                    return reply.status_code == 200

                await wait_until(answers, "the server to answer /health", timeout=30)
                health["workflows"] = (await client.get("/api/workflows")).json()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(proc.wait(), 30)
    return first, health, code


async def test_serve_runs_the_apps_asgi_interface(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    first, health, code = await _serving(
        ["serve", "tests.support.cli_app:app", "--db", db_url, "--port", str(port),
         "--log-level", "warning"], port, tmp_path / "serve.log")
    assert first.startswith("serving tests.support.cli_app:app (cli-serve, ")
    assert first.endswith(f"on http://127.0.0.1:{port}")
    assert health["service"] == "cli-serve"
    assert code == 0, (tmp_path / "serve.log").read_text()


async def test_serve_without_the_app_is_refused() -> None:
    code, _, err = await edda("serve", "tests.support.cli_workflows:app", cwd=ROOT)
    assert code == 1 and "has no attribute 'app'" in err
    code, _, err = await edda("serve", "tests.support.cli_workflows:cli_served", cwd=ROOT)
    assert code == 1 and "not an EddaApp" in err
    code, _, err = await edda("serve", "tests.nowhere:app", cwd=ROOT)
    assert code == 1 and "there is no module 'tests.nowhere'" in err
    _one_line_error(err)


async def test_viewer_serves_a_node_with_the_imported_workflows(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    first, health, code = await _serving(
        ["viewer", "--port", str(port), "-m", "tests.support.cli_workflows",
         "--log-level", "warning"], port, tmp_path / "viewer.log", db=sqlite_url)
    assert first.endswith(f": http://127.0.0.1:{port}/viewer/")
    assert health["service"] == "edda-viewer"
    assert "cli_served" in json.dumps(health["workflows"])
    assert code == 0, (tmp_path / "viewer.log").read_text()


def test_edda_viewer_keeps_edda_s_flags() -> None:
    from edda.cli import edda_viewer_args

    assert edda_viewer_args([], {}) == ["viewer", "--db", "sqlite:///demo.db"]
    assert edda_viewer_args(["-d", "shop.db", "-p", "9000", "-m", "shop.flows"], {}) == [
        "viewer", "--port", "9000", "-m", "shop.flows", "--db", "sqlite:///shop.db"]
    assert edda_viewer_args(["--db=postgresql://u@h/db"], {}) == [
        "viewer", "--db", "postgresql://u@h/db"]
    # As in Edda, EDDA_DB_URL overrides the flag.
    assert edda_viewer_args(["-d", "shop.db"], {"EDDA_DB_URL": "sqlite:///other.db"}) == [
        "viewer", "--db", "sqlite:///other.db"]
