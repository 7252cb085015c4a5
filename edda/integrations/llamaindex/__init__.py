"""Durable LlamaIndex workflows: every step is journaled as an Edda activity.

Install with ``pip install 'edda-actors[llamaindex]'``::

    runner = DurableWorkflowRunner(OrderWorkflow)

    @workflow
    async def order_workflow(ctx: WorkflowContext, order_id: str, amount: float) -> dict:
        return await runner.run(ctx, order_id=order_id, amount=amount)

A step returns `DurableSleepEvent` or `DurableWaitEvent` to wait durably; the
steps that take `ResumeEvent` go on afterwards. See docs/llamaindex.md.
"""

from edda._extras import require as _require

_require("workflows.events", "edda.integrations.llamaindex needs LlamaIndex", "llamaindex")

from edda.integrations.llamaindex.context import StepContext  # noqa: E402
from edda.integrations.llamaindex.errors import WorkflowExecutionError, WorkflowReplayError  # noqa: E402
from edda.integrations.llamaindex.events import DurableSleepEvent, DurableWaitEvent, ResumeEvent  # noqa: E402
from edda.integrations.llamaindex.runner import DurableWorkflowRunner  # noqa: E402
from edda.runtime.names import publish as _publish  # noqa: E402

__all__ = [
    "DurableSleepEvent",
    "DurableWaitEvent",
    "DurableWorkflowRunner",
    "ResumeEvent",
    "StepContext",
    "WorkflowExecutionError",
    "WorkflowReplayError",
]

# Journals store these classes by module: they answer to this package, not to the
# module they live in today (see edda/__init__.py).
_publish(globals())
