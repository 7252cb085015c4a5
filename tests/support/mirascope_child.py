"""A child process for the Mirascope crash test: an agent's tool loop of four turns.

Usage: ``mirascope_child.py start|recover DB_URL``. The model is the test's
endpoint, found through the OpenAI SDK's ``OPENAI_BASE_URL`` and
``OPENAI_API_KEY``. Every run of the ``lookup`` tool is recorded in the SQLite
file named by ``EDDA_SIDE_DB``; with ``EDDA_BLOCK_AT=N`` the tool's N-th call
hangs after recording, so the parent can SIGKILL the process there. ``recover``
starts a node, waits for the workflow to complete and prints its result as JSON.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any

import recovering_child  # run as a script: this folder is first on sys.path

from edda import WorkflowContext, workflow
from edda.integrations.mirascope import DurableAgent, DurableDeps

SIDE_DB = os.environ["EDDA_SIDE_DB"]
BLOCK_AT = int(os.environ.get("EDDA_BLOCK_AT", "0"))


async def lookup(n: int) -> str:
    """Look record n up."""
    with sqlite3.connect(SIDE_DB) as side:
        side.execute("INSERT INTO runs(n, pid) VALUES (?, ?)", (n, os.getpid()))
    if n == BLOCK_AT:
        print(f"blocking in tool {n}", flush=True)
        await asyncio.sleep(3600)
    return str(n)


class Researcher(DurableAgent[None]):
    # ":completions": the endpoint speaks OpenAI's Chat Completions API.
    model = "openai/gpt-4o-mini:completions"

    def get_tools(self) -> list[Any]:
        return [lookup]


@workflow
async def researcher(ctx: WorkflowContext) -> dict[str, Any]:
    answer = await Researcher(ctx).chat_with_tool_loop(DurableDeps(data=None), "find 1 to 3")
    return {"content": answer["content"], "iterations": answer["iterations"]}


if __name__ == "__main__":
    recovering_child.main("mirascope-crash", researcher)
