"""Durable LlamaIndex workflows: every step is journaled as an Edda activity.

Install with ``pip install 'edda-actors[llamaindex]'``::

    runner = DurableWorkflowRunner(OrderWorkflow)

    @workflow
    async def order_workflow(ctx: WorkflowContext, order_id: str, amount: float) -> dict:
        return await runner.run(ctx, order_id=order_id, amount=amount)

A step returns `DurableSleepEvent` or `DurableWaitEvent` to wait durably; the
steps that take `ResumeEvent` go on afterwards. See docs/llamaindex.md.
"""

from edda._extras import install_hint as _install_hint

try:
    import workflows.events as _workflows_events  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "edda.integrations.llamaindex needs LlamaIndex: " + _install_hint('llamaindex')
    ) from exc

from edda.integrations.llamaindex.context import StepContext
from edda.integrations.llamaindex.errors import WorkflowExecutionError, WorkflowReplayError
from edda.integrations.llamaindex.events import DurableSleepEvent, DurableWaitEvent, ResumeEvent
from edda.integrations.llamaindex.runner import DurableWorkflowRunner

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
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
