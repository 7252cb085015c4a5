"""Edda's ``edda.workflow`` module: the workflow wrapper and its registry."""

from edda.runtime.registry import get_all_workflows as get_all_workflows
from edda.runtime.workflow import Workflow as Workflow
from edda.runtime.workflow import workflow as workflow

__all__ = ("Workflow", "get_all_workflows", "workflow")
