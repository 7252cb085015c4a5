"""A replay sees exactly what the live run saw: exceptions keep their type and
attributes, and what the journal cannot store exactly is refused when it is
first recorded rather than changed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from edda import (
    EddaApp,
    RetryExhaustedError,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    activity,
    workflow,
)
from tests.support.gates import interrupt_and_restart
from tests.test_workflows import GATES, gate

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]


class PaymentDeclined(TerminalError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@activity
async def charge_card(ctx: WorkflowContext) -> None:
    raise PaymentDeclined("card declined", code=51)


@activity
async def local_failure(ctx: WorkflowContext) -> None:
    class Local(TerminalError):
        pass

    raise Local("from a local class")


@activity
async def infinite(ctx: WorkflowContext) -> float:
    return math.inf


@workflow
async def declines(ctx: WorkflowContext) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    try:
        await charge_card(ctx)
    except PaymentDeclined as exc:
        seen["declined"] = [type(exc).__name__, str(exc), exc.code]
    try:
        await local_failure(ctx)
    except Exception as exc:
        seen["local"] = [type(exc).__name__, str(exc)]
    await gate(ctx, "fidelity")
    return seen


@workflow
async def takes_amount(ctx: WorkflowContext, amount: float) -> float:
    return amount


@workflow
async def keeps_infinity(ctx: WorkflowContext) -> str:
    try:
        await infinite(ctx)
    except TypeError as exc:
        return str(exc)
    return "stored"


EXPECTED = {"declined": ["PaymentDeclined", "card declined", 51],
            # the live run raises what a replay rebuilds for a class it cannot import
            "local": ["Exception", "local_failure.<locals>.Local: from a local class"]}


async def test_a_replay_sees_the_exceptions_the_live_run_saw(
    sqlite_url: str, make_app: MakeApp
) -> None:
    async def start() -> object:
        return await declines.start()

    app, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "fidelity", start)
    (instance,) = (await app.find_instances(workflow_name="declines"))["instances"]
    assert await app.wait_result(instance["instance_id"], timeout=15) == EXPECTED


async def test_the_live_run_sees_them_the_same_way(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await declines.start()
    assert await app.wait_result(iid, timeout=15) == EXPECTED


async def test_non_finite_floats_are_refused_when_first_recorded(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    with pytest.raises(TypeError, match=r"argument 'amount'.*inf"):
        await takes_amount.start(amount=math.inf)
    iid = await keeps_infinity.start()
    message = await app.wait_result(iid, timeout=15)
    assert "inf" in message and "JSON cannot store" in message


class CarriesAnObject(TerminalError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.handle = object()
        self.code = 7


@activity
async def raises_with_an_object(ctx: WorkflowContext) -> None:
    raise CarriesAnObject("cannot keep the handle")


class Unreachable(Exception):
    pass


@activity(retry_policy=RetryPolicy(max_attempts=1))
async def fails_with_a_socket(ctx: WorkflowContext) -> None:
    error = Unreachable("partner down")
    error.socket = object()  # type: ignore[attr-defined]
    error.host = "partner.example"  # type: ignore[attr-defined]
    raise error


@workflow
async def unstorable_attributes(ctx: WorkflowContext) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    try:
        await raises_with_an_object(ctx)
    except CarriesAnObject:
        seen["terminal"] = "arrived with an attribute the journal cannot hold"
    except TypeError as exc:
        seen["terminal"] = [type(exc).__name__, str(exc).split(" (")[0]]
    try:
        await fails_with_a_socket(ctx)
    except RetryExhaustedError as exc:
        cause = exc.__cause__
        seen["other"] = [type(cause).__name__, getattr(cause, "host", None),
                         hasattr(cause, "socket")]
    await gate(ctx, "unstorable")
    return seen


UNSTORABLE = {
    # a TerminalError is refused, naming the attribute
    "terminal": ["NotSerializableError", "attribute 'handle' of CarriesAnObject cannot be stored "
                 "in the journal"],
    # any other exception loses what cannot be stored, live as on replay
    "other": ["Unreachable", "partner.example", False],
}


async def test_what_an_exception_cannot_store_is_refused_or_left_out_live(
    sqlite_url: str, make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await unstorable_attributes.start()
    assert await app.wait_result(iid, timeout=15) == UNSTORABLE
    assert "attribute 'socket' of Unreachable cannot be stored" in caplog.text


async def test_and_a_replay_sees_the_same(sqlite_url: str, make_app: MakeApp) -> None:
    async def start() -> object:
        return await unstorable_attributes.start()

    app, _ = await interrupt_and_restart(make_app, sqlite_url, GATES, "unstorable", start)
    (instance,) = (await app.find_instances(workflow_name="unstorable_attributes"))["instances"]
    assert await app.wait_result(instance["instance_id"], timeout=15) == UNSTORABLE


@activity
async def nested(ctx: WorkflowContext) -> Any:
    return {"pair": (1, 2), "tags": {"a"}}


@workflow
async def reads_nested(ctx: WorkflowContext) -> list[str]:
    value = await nested(ctx)
    return [type(value["pair"]).__name__, type(value["tags"]).__name__]


async def test_the_live_run_sees_a_result_as_the_journal_gives_it_back(
    sqlite_url: str, make_app: MakeApp
) -> None:
    """Inside an untyped dict a tuple and a set are stored as JSON lists; the live run
    sees lists too, as every replay will, not the tuple and the set."""
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await reads_nested.start()
    assert await app.wait_result(iid, timeout=15) == ["list", "list"]
