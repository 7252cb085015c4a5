"""Durable Mirascope LLM calls: every call to a model is journaled as an Edda activity.

Install with ``pip install 'edda-actors[mirascope]'``::

    @durable_call("openai/gpt-4o-mini")
    async def summarize(text: str) -> str:
        return f"Summarize in one sentence: {text}"

    @workflow
    async def digest(ctx: WorkflowContext, text: str) -> str:
        answer = await summarize(ctx, text)       # one activity; never asked again on replay
        return answer["content"]

`call` and `call_with_messages` ask a model from a workflow without a prompt
function; `DurableAgent` keeps a conversation and runs tool loops in which every
turn and every tool call is an activity. Tools and response models are never
journaled: the journal holds the tool calls, the tools' results and the
structured output as data. See docs/mirascope.md.
"""

from edda._extras import require as _require

_require("mirascope.llm", "edda.integrations.mirascope needs Mirascope", "mirascope")

from edda.integrations.mirascope.agent import DurableAgent  # noqa: E402
from edda.integrations.mirascope.calls import call, call_with_messages, durable_call  # noqa: E402
from edda.integrations.mirascope.deps import DurableDeps  # noqa: E402
from edda.integrations.mirascope.response import DurableResponse  # noqa: E402
from edda.runtime.names import publish as _publish  # noqa: E402

__all__ = [
    "DurableAgent",
    "DurableDeps",
    "DurableResponse",
    "call",
    "call_with_messages",
    "durable_call",
]

# Journals store these classes by module: they answer to this package, not to the
# module they live in today (see edda/__init__.py).
_publish(globals())
