"""Process-wide registries: workflows by name, and the app that `Workflow.start` uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edda.runtime.app import EddaApp
    from edda.runtime.workflow import Workflow

_workflows: dict[str, Workflow[..., Any]] = {}
_current_app: EddaApp | None = None


def register_workflow(wf: Workflow[..., Any]) -> None:
    """Register a workflow under its name; a later definition replaces an earlier one."""
    _workflows[wf.name] = wf


def get_workflow(name: str) -> Workflow[..., Any] | None:
    """The workflow registered under ``name``, if any."""
    return _workflows.get(name)


def get_all_workflows() -> dict[str, Workflow[..., Any]]:
    """A copy of every registered workflow, by name."""
    return dict(_workflows)


def set_current_app(app: EddaApp | None) -> None:
    """Make ``app`` the one that `Workflow.start` runs on."""
    global _current_app
    _current_app = app


def current_app() -> EddaApp | None:
    """The most recently initialised app that has not shut down."""
    return _current_app
