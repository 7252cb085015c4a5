"""Durable Mirascope calls against a model served over HTTP on 127.0.0.1.

Mirascope's own provider code and the OpenAI and Anthropic SDKs talk to
`tests.support.fake_llm.FakeLLM` under uvicorn; nothing of either library is
patched. The endpoint counts every request, so "never asked again" is checked
where it matters: at the model.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mirascope import llm
from pydantic import BaseModel

from edda import (
    EddaApp,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    send_event,
    wait_event,
    workflow,
)
from edda.integrations.mirascope import (
    DurableAgent,
    DurableDeps,
    DurableResponse,
    call,
    call_with_messages,
    durable_call,
)
from edda.journal.database import Database
from edda.journal.entries import ActivityCompleted, ActivityFailed
from edda.journal.store import InstanceFilter, SqlJournalStore, read_journal
from tests.support.fake_llm import FakeLLM, Reply, Request
from tests.support.gates import finished
from tests.support.web import serve

pytestmark = pytest.mark.anyio
MakeApp = Callable[..., EddaApp]
SUPPORT = Path(__file__).parent / "support"
FAST = RetryPolicy(initial_interval=0.01, backoff_coefficient=1.0, max_attempts=4)
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-sonnet-4-5"


def answer(request: Request) -> Reply:
    """The scripted model of most tests: see what it was asked, answer from that."""
    results = request.tool_results()
    if "weather" in request.user_text():
        if not results:
            return Reply(tool_calls=[("get_weather", {"city": "Paris"})])
        if len(results) == 1:
            return Reply(text="Checking Rome too.",
                         tool_calls=[("get_weather", {"city": "Rome"}),
                                     ("to_fahrenheit", {"celsius": 20})])
        return Reply(text=f"Paris and Rome: {', '.join(results)}")
    if "invoice" in request.user_text():
        return Reply(structured={"number": "INV-7", "total": 41.5, "lines": ["tea", "cake"]})
    return Reply(text=f"echo: {request.user_text()}")


@pytest.fixture
def make_app(make_app: MakeApp) -> MakeApp:
    """Apps whose activities retry fast."""

    def build(db_url: str, **kwargs: Any) -> EddaApp:
        kwargs.setdefault("default_retry_policy", FAST)
        return make_app(db_url, **kwargs)

    return build


@pytest.fixture
async def model() -> AsyncIterator[FakeLLM]:
    """The endpoint, with Mirascope's providers pointed at it."""
    fake = FakeLLM(answer)
    async with serve(fake) as base:
        # An OpenAI-compatible server speaks the Chat Completions API.
        llm.register_provider("openai:completions", scope="openai/", base_url=f"{base}/v1",
                              api_key="sk-test")
        llm.register_provider("anthropic", scope="anthropic/", base_url=base,
                              api_key="sk-ant-test")
        try:
            yield fake
        finally:
            await _close_providers()


async def _close_providers() -> None:
    """Forget the providers, closing their SDK clients' connections."""
    from mirascope.llm.providers.provider_registry import PROVIDER_REGISTRY

    async def close(provider: Any) -> None:
        for value in vars(provider).values():
            if isinstance(value, llm.providers.BaseProvider):  # a sub-provider
                await close(value)
            elif callable(getattr(value, "close", None)):  # an SDK client
                closed = value.close()
                if asyncio.iscoroutine(closed):
                    await closed

    for provider in {id(p): p for p in PROVIDER_REGISTRY.values()}.values():
        await close(provider)
    llm.reset_provider_registry()


async def _journal(app: EddaApp, instance_id: str) -> list[Any]:
    return [r.entry for r in await read_journal(app.database, instance_id)]


async def _completed(app: EddaApp, instance_id: str) -> dict[str, ActivityCompleted]:
    return {e.position: e for e in await _journal(app, instance_id)
            if isinstance(e, ActivityCompleted)}


async def _result(app: EddaApp, instance_id: str) -> Any:
    inst = await finished(app, instance_id, timeout=20.0)
    assert inst["status"] == "completed", inst["output_data"]
    return inst["output_data"]["result"]


# -- plain calls --------------------------------------------------------------------------------


@durable_call(OPENAI, temperature=0.2)
async def summarize(text: str) -> str:
    return f"Summarize: {text}"


@durable_call(ANTHROPIC, max_tokens=64)
def shout(word: str) -> list[llm.Message]:
    return [llm.messages.system("Answer in capitals."), llm.messages.user(f"Say {word}")]


@workflow
async def asks_then_waits(ctx: WorkflowContext, text: str) -> dict[str, Any]:
    first = await call(ctx, model=OPENAI, prompt=f"Hello {text}", system="Be brief",
                       max_tokens=50)
    second = await summarize(ctx, text)
    third = await shout(ctx, "hi")
    event = await wait_event(ctx, "llm.go")
    return {"first": first["content"], "second": second["content"], "third": third,
            "event": event.data}


async def test_each_call_is_one_activity_and_is_never_asked_again(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await asks_then_waits.start(text="world")
    assert len(model.requests) == 3
    first, second, third = model.requests
    assert (first.api, first.system, first.user_text()) == ("openai", "Be brief", "Hello world")
    assert first.body["max_tokens"] == 50
    assert (second.user_text(), second.body["temperature"]) == ("Summarize: world", 0.2)
    assert (third.api, third.system, third.user_text()) == ("anthropic", "Answer in capitals.",
                                                           "Say hi")
    await app.shutdown()  # waiting: the next node replays the three calls

    app2 = make_app(sqlite_url)
    await app2.initialize()
    await send_event("llm.go", "test", {"ok": True})
    result = await _result(app2, iid)
    assert len(model.requests) == 3, "a replay never asks the model again"
    assert result["first"] == "echo: Hello world"
    assert result["second"] == "echo: Summarize: world"
    third_response = result["third"]
    assert third_response["content"] == "echo: Say hi"
    assert (third_response["model"], third_response["provider"]) == (ANTHROPIC, "anthropic")
    assert third_response["stop_reason"] == "end_turn"
    assert third_response["usage"]["input_tokens"] == 11
    assert third_response["raw"]["id"] == "msg_3"
    assert result["event"] == {"ok": True}

    done = await _completed(app2, iid)
    assert list(done) == ["call:1", "summarize:1", "shout:1"]
    assert done["call:1"].kwargs == {"model": OPENAI, "prompt": "Hello world",
                                     "system": "Be brief", "max_tokens": 50}
    assert done["summarize:1"].args == ["world"]
    assert done["call:1"].result["provider"] == "openai"


# -- a conversation in plain messages -----------------------------------------------------------


@workflow
async def converses(ctx: WorkflowContext) -> dict[str, Any]:
    return await call_with_messages(ctx, model=ANTHROPIC, messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ])


async def test_call_with_messages_sends_the_conversation(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await converses.start()
    result = await _result(app, iid)
    assert DurableResponse.from_dict(result).content == "echo: How are you?"
    (request,) = model.requests
    assert request.system == "You are terse."
    assert [(m["role"], m["content"]) for m in request.messages] == [
        ("user", "Hi"), ("assistant", "Hello."), ("user", "How are you?")]
    done = await _completed(app, iid)
    assert done["call_with_messages:1"].kwargs["messages"][3] == {"role": "user",
                                                                  "content": "How are you?"}


# -- a tool loop ---------------------------------------------------------------------------------

TOOL_RUNS: list[str] = []


@llm.tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    TOOL_RUNS.append(f"weather:{city}")
    return {"Paris": "18C, rain", "Rome": "25C, sun"}[city]


async def to_fahrenheit(celsius: float) -> float:
    """Celsius to Fahrenheit."""
    TOOL_RUNS.append(f"fahrenheit:{celsius}")
    return celsius * 9 / 5 + 32


class WeatherAgent(DurableAgent[dict[str, str]]):
    model = OPENAI

    def get_tools(self) -> list[Any]:
        return [get_weather, to_fahrenheit]

    def build_prompt(self, ctx: llm.Context[DurableDeps[dict[str, str]]],
                     message: str) -> list[Any]:
        return [{"role": "system", "content": f"You help {ctx.deps.data['user']}."},
                *ctx.deps.history, {"role": "user", "content": message}]


class ClaudeWeatherAgent(WeatherAgent):
    model = ANTHROPIC


@workflow
async def weather_chat(ctx: WorkflowContext, provider: str) -> dict[str, Any]:
    agent = (WeatherAgent if provider == "openai" else ClaudeWeatherAgent)(ctx)
    deps = DurableDeps(data={"user": "Ada"})
    answer = await agent.chat_with_tool_loop(deps, "What is the weather in Paris and Rome?")
    return {"answer": answer, "history": deps.history}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_tool_loop_journals_every_turn_and_tool_call(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM, provider: str
) -> None:
    TOOL_RUNS.clear()
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await weather_chat.start(provider=provider)
    result = await _result(app, iid)
    answer = result["answer"]
    assert answer["content"] == "Paris and Rome: 18C, rain, 25C, sun, 68.0"
    assert answer["iterations"] == 3 and not answer["tool_calls"]
    assert [(o["name"], o["result"]) for o in answer["tool_results"]] == [
        ("get_weather", "18C, rain"), ("get_weather", "25C, sun"), ("to_fahrenheit", 68.0)]
    assert result["history"] == [
        {"role": "user", "content": "What is the weather in Paris and Rome?"},
        {"role": "assistant", "content": answer["content"]}]
    assert TOOL_RUNS == ["weather:Paris", "weather:Rome", "fahrenheit:20.0"]

    # The model saw each tool's answer, tied to the call that asked for it.
    assert len(model.requests) == 3
    last = model.requests[-1]
    assert last.system == "You help Ada."
    asked = [c for m in last.messages for c in m.get("tool_calls", [])]
    answered = [m["id"] for m in last.messages if m["role"] == "tool"]
    assert [c["id"] for c in asked] == answered
    assert [c["args"] for c in asked] == [{"city": "Paris"}, {"city": "Rome"}, {"celsius": 20}]

    done = await _completed(app, iid)
    assert list(done) == ["_chat_activity:1", "tool.get_weather:1", "_chat_activity:2",
                          "tool.get_weather:2", "tool.to_fahrenheit:1", "_chat_activity:3"]
    turn = done["_chat_activity:1"]
    assert turn.kwargs["tools"] == ["get_weather", "to_fahrenheit"]
    assert turn.kwargs["message"] == "What is the weather in Paris and Rome?"
    assert done["tool.get_weather:1"].args == [
        {"id": done["_chat_activity:1"].result["tool_calls"][0]["id"], "name": "get_weather",
         "args": {"city": "Paris"}}]
    # The journal holds data only: no callable, no object's repr.
    stored = json.dumps([[e.args, e.kwargs, e.result] for e in done.values()])
    assert "<function" not in stored and " at 0x" not in stored


# -- structured output ---------------------------------------------------------------------------


class Invoice(BaseModel):
    number: str
    total: float
    lines: list[str]


# Forced tool calling: Mirascope turns the format tool's call back into the answer.
@durable_call(ANTHROPIC, response_model=llm.format(Invoice, mode="tool"))
async def read_invoice(text: str) -> str:
    return f"Read this invoice: {text}"


@workflow
async def invoices(ctx: WorkflowContext) -> dict[str, Any]:
    via_call = await call(ctx, model=OPENAI, prompt="Extract the invoice", response_model=Invoice)
    via_decorator = await read_invoice(ctx, "INV-7, tea and cake, 41.50")
    return {"call": via_call, "decorator": via_decorator}


async def test_a_response_model_is_journaled_as_its_data(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    iid = await invoices.start()
    result = await _result(app, iid)
    expected = {"number": "INV-7", "total": 41.5, "lines": ["tea", "cake"]}
    assert result["call"]["structured_output"] == expected
    assert result["decorator"]["structured_output"] == expected
    assert Invoice.model_validate(result["decorator"]["structured_output"]).total == 41.5
    openai_request, anthropic_request = model.requests
    assert openai_request.body["response_format"]["type"] == "json_schema"
    assert any(t.startswith("__mirascope_formatted_output_tool__")
               for t in anthropic_request.tools)
    done = await _completed(app, iid)
    assert done["call:1"].kwargs["response_model"] == "tests.test_mirascope:Invoice"
    assert read_invoice._response_model.formattable is Invoice  # type: ignore[attr-defined]
    assert done["read_invoice:1"].result["content"] == json.dumps(expected)


# -- provider errors -----------------------------------------------------------------------------


@workflow
async def asks_once(ctx: WorkflowContext, model_id: str) -> dict[str, Any]:
    return await call(ctx, model=model_id, prompt="ping")


@pytest.mark.parametrize("model_id", [OPENAI, ANTHROPIC])
async def test_server_errors_and_rate_limits_are_retried_by_the_activity(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM, model_id: str
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    model.failures = [500, 429]
    iid = await asks_once.start(model_id=model_id)
    assert (await _result(app, iid))["content"] == "echo: ping"
    assert len(model.requests) == 3, "two failures, then the answer"
    done = await _completed(app, iid)
    assert done["call:1"].attempts == 3
    assert [e["error_type"] for e in done["call:1"].failed_attempts] == [
        "ServerError", "RateLimitError"]


async def test_a_refused_request_is_not_retried(
    sqlite_url: str, make_app: MakeApp, model: FakeLLM
) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    model.failures = [401]
    with pytest.raises(TerminalError, match="refused the call") as raised:
        await asks_once.start(model_id=OPENAI)
    assert raised.value.error_type == "AuthenticationError"  # type: ignore[attr-defined]
    assert raised.value.status_code == 401  # type: ignore[attr-defined]
    assert len(model.requests) == 1
    (iid,) = [i["instance_id"] for i in (await app.find_instances())["instances"]]
    (failed,) = [e for e in await _journal(app, iid) if isinstance(e, ActivityFailed)]
    assert failed.attempts == 1


# -- bad input -----------------------------------------------------------------------------------


async def test_bad_input_is_refused_at_the_call() -> None:
    with pytest.raises(ValueError, match="provider/model-name"):
        durable_call("gpt-4o")
    with pytest.raises(TypeError, match="unknown LLM call parameter 'temprature'"):
        durable_call(OPENAI, temprature=0.5)
    with pytest.raises(ValueError, match="json_mode=True needs a response_model"):
        durable_call(OPENAI, json_mode=True)
    with pytest.raises(TypeError, match="inside a workflow"):
        call(object(), model=OPENAI, prompt="x")  # type: ignore[arg-type]


def test_durable_response_round_trips() -> None:
    response = DurableResponse(content="hi", model=OPENAI, provider="openai",
                               tool_calls=[{"id": "1", "name": "f", "args": {}}])
    assert DurableResponse.from_dict(response.to_dict()) == response
    assert response.has_tool_calls
    assert not DurableResponse(content="", model="m", provider="unknown").has_tool_calls


def test_the_integration_exports_what_all_says() -> None:
    import edda.integrations.mirascope as integration

    public = {name for name, value in vars(integration).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(integration.__all__)
    assert DurableAgent.model == "anthropic/claude-sonnet-4-20250514"
    assert DurableResponse.__module__ == "edda.integrations.mirascope"


# -- a real crash in the middle of a tool loop ---------------------------------------------------


def crash_script(request: Request) -> Reply:
    done = len(request.tool_results())
    if done < 3:
        return Reply(tool_calls=[("lookup", {"n": done + 1})])
    return Reply(text="found " + " ".join(request.tool_results()))


async def _run_until(args: list[str], env: dict[str, str], marker: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(SUPPORT / "mirascope_child.py"), *args, env=env,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().strip()
        assert line == marker, f"child printed {line!r}, expected {marker!r}"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL


async def test_sigkill_in_a_tool_loop_resumes_without_asking_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    side_db = tmp_path / "side.db"
    with sqlite3.connect(side_db) as side:
        side.execute("CREATE TABLE runs(n INTEGER, pid INTEGER)")
    fake = FakeLLM(crash_script)
    async with serve(fake) as base:
        # The child finds the endpoint through the OpenAI SDK's own settings.
        env = {**os.environ, "OPENAI_BASE_URL": f"{base}/v1", "OPENAI_API_KEY": "sk-test",
               "EDDA_SIDE_DB": str(side_db), "EDDA_BLOCK_AT": "3"}
        await _run_until(["start", sqlite_url], env, "blocking in tool 3")
        assert [len(r.tool_results()) for r in fake.requests] == [0, 1, 2]
        del env["EDDA_BLOCK_AT"]
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(SUPPORT / "mirascope_child.py"), "recover", sqlite_url,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(child.communicate(), 90)
    assert child.returncode == 0, err.decode()
    assert json.loads(out) == {"content": "found 1 2 3", "iterations": 4}
    assert [len(r.tool_results()) for r in fake.requests] == [0, 1, 2, 3], (
        "the three finished turns were not asked again")
    with sqlite3.connect(side_db) as side:
        runs = [n for (n,) in side.execute("SELECT n FROM runs ORDER BY rowid")]
    assert runs == [1, 2, 3, 3], "tools 1 and 2 finished before the kill; 3 ran again"
    assert await _positions(sqlite_url) == [
        "_chat_activity:1", "tool.lookup:1", "_chat_activity:2", "tool.lookup:2",
        "_chat_activity:3", "tool.lookup:3", "_chat_activity:4"]


async def _positions(db_url: str) -> list[str]:
    db = Database.open(db_url)
    try:
        (row,) = await SqlJournalStore(db, None).list_rows(
            InstanceFilter(workflow_name="researcher"), limit=10, after=None)
        return [r.entry.position for r in await read_journal(db, row["instance_id"])
                if isinstance(r.entry, ActivityCompleted)]
    finally:
        await db.dispose()


EXAMPLE = Path(__file__).parent.parent / "examples" / "mirascope_support.py"


def test_the_example_survives_the_kill_and_asks_each_question_once(tmp_path: Path) -> None:
    env = {**os.environ, "EDDA_DEMO_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-W", "error", str(EXAMPLE)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "killed with SIGKILL" in out
    asked = [line.strip() for line in out.splitlines() if "[model] asked" in line]
    assert [line.split("(")[1].split(" ")[0] for line in asked] == ["0", "0", "1", "2"], asked
    assert "-> completed: {'intent': 'refund', 'reply': 'Done: refunded 42.00 EUR. Sorry for " \
           "the trouble!', 'turns': 3}" in out
    ledger = out.split("Ledger")[1]
    assert ledger.count("looked up order A-1") == 1 and ledger.count("refunded 42.00") == 1
    assert done.stderr == "", "the example runs without warnings"
