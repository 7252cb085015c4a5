"""Edda's ``edda.hooks`` module: observability hooks."""

from edda.runtime.hooks import HooksBase as HooksBase
from edda.runtime.hooks import WorkflowHooks as WorkflowHooks

__all__ = ("HooksBase", "WorkflowHooks")
