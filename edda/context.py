"""Edda's ``edda.context`` module: the context workflows and activities receive."""

from edda.runtime.context import WorkflowContext as WorkflowContext

__all__ = ("WorkflowContext",)
