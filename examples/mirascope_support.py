"""Edda + Mirascope demo: a support agent's tool loop survives SIGKILL; no turn is asked twice.

Run it with ``.venv/bin/python examples/mirascope_support.py`` after ``make test``
(or ``pip install '/path/to/edda-actors[mirascope,server]'``). It needs no API key and no
network: it serves its own OpenAI-compatible model on 127.0.0.1, a script that
answers like a model would, and points Mirascope at it with
``llm.register_provider(..., base_url=...)``, as you would for any
OpenAI-compatible server.

1. A child process handles a support ticket: a durable call classifies it into
   a pydantic model (structured output), then a `DurableAgent` runs a tool loop:
   the model looks the order up, then asks for a refund. The payment service is
   slow; the child is killed with SIGKILL while the refund tool runs.
2. A fresh Edda node in this process resumes the ticket from its journal. The
   model's log shows every question asked once: the classification and the two
   finished turns come from the journal, so does the order lookup; the refund,
   which never finished, runs again, and the model is asked for the last turn.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from mirascope import llm
from pydantic import BaseModel

from edda import EddaApp, WorkflowContext, workflow
from edda.integrations.mirascope import DurableAgent, DurableDeps, durable_call

WORKDIR = Path(os.environ.get("EDDA_DEMO_DIR") or tempfile.mkdtemp(prefix="edda-mirascope-"))
if "EDDA_DEMO_DIR" not in os.environ:  # a folder of its own: removed when the demo ends
    atexit.register(shutil.rmtree, WORKDIR, True)
DB_URL = f"sqlite:///{WORKDIR / 'support.db'}"
LEDGER = WORKDIR / "ledger.db"
MODEL = "openai/gpt-4o-mini"
LEASE_SECONDS = 2.0  # a killed node's instances move to a live one after its lease


# -- the model: an OpenAI-compatible endpoint that answers from a script ----------------------


def scripted_answer(body: dict[str, Any]) -> dict[str, Any]:
    """What the "model" says, given the Chat Completions request it got."""
    messages = body["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if "response_format" in body:  # the classification, as structured output
        return {"content": json.dumps({"intent": "refund", "order_id": "A-1"})}
    if not results:
        return {"tool_calls": [("look_up_order", {"order_id": "A-1"})]}
    if len(results) == 1:
        order = json.loads(results[0])
        return {"tool_calls": [("refund", {"order_id": "A-1", "amount": order["total"]})]}
    return {"content": f"Done: {results[1]}. Sorry for the trouble!"}


async def model_endpoint(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                         send: Callable[[Any], Awaitable[None]]) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body)
    answer = scripted_answer(request)
    turns = sum(1 for m in request["messages"] if m["role"] == "tool")
    said = answer.get("content") or ", ".join(name for name, _ in answer["tool_calls"])
    print(f"    [model] asked ({turns} tool results so far) -> {said}", flush=True)
    message_out: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
    if "tool_calls" in answer:
        message_out["tool_calls"] = [
            {"id": f"call_{turns}_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(answer["tool_calls"])]
    data = json.dumps({
        "id": "chatcmpl-demo", "object": "chat.completion", "created": 0,
        "model": request["model"],
        "choices": [{"index": 0, "message": message_out,
                     "finish_reason": "tool_calls" if "tool_calls" in answer else "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


def use_model_at(base_url: str) -> None:
    """Point Mirascope's ``openai/`` models at an OpenAI-compatible server."""
    llm.register_provider("openai:completions", scope="openai/", base_url=base_url,
                          api_key="not-needed")


# -- the durable side: a classification and an agent with tools --------------------------------


def record(what: str) -> None:
    with sqlite3.connect(LEDGER) as ledger:
        ledger.execute("CREATE TABLE IF NOT EXISTS effects(what, pid)")
        ledger.execute("INSERT INTO effects VALUES (?, ?)", (what, os.getpid()))
    print(f"    [pid {os.getpid()}] {what}", flush=True)


class Intent(BaseModel):
    intent: str
    order_id: str


@durable_call(MODEL, response_model=Intent)
async def classify(ticket: str) -> str:
    return f"Classify this support ticket: {ticket}"


async def look_up_order(order_id: str) -> dict[str, Any]:
    """Look an order up."""
    record(f"looked up order {order_id}")
    return {"order_id": order_id, "total": 42.0, "status": "delivered damaged"}


async def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    if os.environ.get("DEMO_SLOW_PAYMENTS"):
        print(f"    [pid {os.getpid()}] refund of {order_id}: the payment service is slow...",
              flush=True)
        await asyncio.sleep(3600)  # the parent kills us here
    record(f"refunded {amount:.2f} EUR for {order_id}")
    return f"refunded {amount:.2f} EUR"


class SupportAgent(DurableAgent[dict[str, str]]):
    model = MODEL

    def get_tools(self) -> list[Any]:
        return [look_up_order, refund]

    def build_prompt(self, ctx: llm.Context[DurableDeps[dict[str, str]]],
                     message: str) -> list[Any]:
        return [{"role": "system", "content": f"You help {ctx.deps.data['customer']}."},
                *ctx.deps.history, {"role": "user", "content": message}]


@workflow
async def support_ticket(ctx: WorkflowContext, customer: str, ticket: str) -> dict[str, Any]:
    intent = Intent.model_validate((await classify(ctx, ticket))["structured_output"])
    deps = DurableDeps(data={"customer": customer})
    answer = await SupportAgent(ctx).chat_with_tool_loop(
        deps, f"{ticket} (intent: {intent.intent}, order {intent.order_id})")
    return {"intent": intent.intent, "reply": answer["content"], "turns": answer["iterations"]}


# -- the demo ------------------------------------------------------------------------------------


async def run_child() -> None:
    use_model_at(os.environ["DEMO_MODEL_URL"])
    app = EddaApp("support", DB_URL, lease_seconds=LEASE_SECONDS)
    await app.initialize()
    await support_ticket.start(customer="Ada", ticket="My kettle arrived broken, order A-1.")


async def main() -> None:
    print(f"Edda + Mirascope demo; database and ledger in {WORKDIR}\n")
    listener = socket.create_server(("127.0.0.1", 0))  # requests queue until uvicorn runs
    server = uvicorn.Server(uvicorn.Config(model_endpoint, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    base_url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    print(f"A scripted model answers at {base_url}\n")
    try:
        await kill_during_refund(base_url)
        await resume(base_url)
    finally:
        server.should_exit = True
        await serving
        listener.close()
    show_ledger()


async def kill_during_refund(base_url: str) -> None:
    print("1) A child process takes the ticket and is killed in the middle of the tool loop")
    env = {**os.environ, "EDDA_DEMO_DIR": str(WORKDIR), "DEMO_MODEL_URL": base_url,
           "DEMO_SLOW_PAYMENTS": "1"}
    child = await asyncio.create_subprocess_exec(sys.executable, __file__, "--child", env=env,
                                                 stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    while line := (await child.stdout.readline()).decode():
        print(line, end="", flush=True)
        if "payment service is slow" in line:
            break
    child.send_signal(signal.SIGKILL)
    await child.wait()
    print(f"   -> child {child.pid} killed with SIGKILL\n")


async def resume(base_url: str) -> None:
    print("2) A fresh node in this process resumes the ticket from its journal")
    use_model_at(base_url)
    async with EddaApp("support", DB_URL, lease_seconds=LEASE_SECONDS) as app:
        found = await app.find_instances(workflow_name="support_ticket")
        instance_id = found["instances"][0]["instance_id"]
        result = await app.wait_result(instance_id, timeout=30)
        print(f"   -> completed: {result}")
        print("   journal of the ticket:")
        for entry in await app.get_history(instance_id):
            print(f"     {entry['id']:>2} {entry['event_type']:<18} {entry['activity_id']}")


def show_ledger() -> None:
    print("\nLedger (side effects, with the process that caused them):")
    with sqlite3.connect(LEDGER) as ledger:
        rows = ledger.execute("SELECT what, pid FROM effects ORDER BY rowid").fetchall()
    for what, pid in rows:
        print(f"   {what:<36} pid {pid}")
    print("\nThe model was asked each question once; every tool that finished ran once.")


if __name__ == "__main__":
    if "--child" in sys.argv:
        asyncio.run(run_child())
    else:
        asyncio.run(main())
