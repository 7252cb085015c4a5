"""Registries: which workflows and compensations a node knows, and which node is current.

The decorators register into the process's default registry, as Edda does, so
the usual one-app program needs nothing more. Each `EddaApp` has a registry of
its own that looks through to the default one (or, given ``workflows=``, knows
only those), so several nodes in one process never share runtime state.

The *current app* is the node that ``Workflow.start`` and ``send_event`` use:
inside a node's own tasks (its workflows, activities, handlers) that node;
elsewhere the most recently initialized node that is still running.
"""

from __future__ import annotations

import contextvars
import gc
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from edda.runtime.app import EddaApp
    from edda.runtime.workflow import Workflow


class Registry:
    """Workflows and compensations by name; lookups fall back to ``parent``."""

    def __init__(self, parent: Registry | None = None,
                 workflows: Iterable[Workflow[..., Any]] | None = None) -> None:
        self._parent = parent
        #: With an explicit list of workflows, the parent's are not seen.
        self._own_workflows_only = workflows is not None
        self._workflows: dict[str, Workflow[..., Any]] = {}
        self._compensations: dict[str, Callable[..., Any]] = {}
        for wf in workflows or ():
            self.add_workflow(wf)

    def add_workflow(self, wf: Workflow[..., Any]) -> None:
        """Register a workflow under its name.

        The same definition run again (a module reloaded, a function defined in a
        loop or a test) replaces the earlier one.

        Raises:
            ValueError: If another function is registered under that name already:
                instances record only the name, so they would run the wrong code.
        """
        earlier = self._workflows.get(wf.name)
        if earlier is not None and _origin(earlier.func) != _origin(wf.func):
            raise ValueError(
                f"two workflows are named {wf.name!r}: {_origin(earlier.func)} and "
                f"{_origin(wf.func)}; instances are found by name, so rename one function")
        self._workflows[wf.name] = wf

    def remove_workflow(self, name: str) -> None:
        """Forget a workflow (only this registry's own)."""
        self._workflows.pop(name, None)

    def workflow(self, name: str) -> Workflow[..., Any] | None:
        """The workflow registered under ``name``, if any."""
        found = self._workflows.get(name)
        if found is None and self._parent is not None and not self._own_workflows_only:
            return self._parent.workflow(name)
        return found

    def workflows(self) -> dict[str, Workflow[..., Any]]:
        """Every workflow this registry knows, by name."""
        if self._parent is None or self._own_workflows_only:
            return dict(self._workflows)
        return {**self._parent.workflows(), **self._workflows}

    def add_compensation(self, name: str, func: Callable[..., Any]) -> None:
        self._compensations[name] = func

    def compensation(self, name: str) -> Callable[..., Any] | None:
        """The compensation registered under ``name``, if any."""
        found = self._compensations.get(name)
        if found is None and self._parent is not None:
            return self._parent.compensation(name)
        return found


def _origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


#: What the decorators register into.
DEFAULT = Registry()

_running: list[EddaApp] = []
_made: list[weakref.ref[EddaApp]] = []
_current: contextvars.ContextVar[EddaApp | None] = contextvars.ContextVar(
    "edda_current_app", default=None)


def register_workflow(wf: Workflow[..., Any]) -> None:
    """Register a workflow in the default registry."""
    DEFAULT.add_workflow(wf)


def get_workflow(name: str) -> Workflow[..., Any] | None:
    """The workflow of the current app (else of the default registry) named ``name``."""
    app = current_app()
    return (DEFAULT if app is None else app.registry).workflow(name)


def get_all_workflows() -> dict[str, Workflow[..., Any]]:
    """Every workflow the current app (else the default registry) knows, by name."""
    app = current_app()
    return (DEFAULT if app is None else app.registry).workflows()


def app_made(app: EddaApp) -> None:
    """``app`` exists; until it is initialized, the first use may initialize it."""
    _made.append(weakref.ref(app))


async def ready_app() -> EddaApp | None:
    """The current app; else the one app of this process that was made but never
    initialized, initialized now (Edda's apps start on first use, so one mounted
    without lifespan events works from a direct ``start()`` too)."""
    app = current_app()
    if app is not None:
        return app
    if len(_fresh_apps()) > 1:
        gc.collect()  # apps dropped by their owners may only wait for the cycle collector
    fresh = _fresh_apps()
    if len(fresh) != 1:
        return None
    await fresh[0].initialize()
    return fresh[0]


def _fresh_apps() -> list[EddaApp]:
    _made[:] = [ref for ref in _made if ref() is not None]
    return [a for a in (ref() for ref in _made) if a is not None and a.fresh]


def app_started(app: EddaApp) -> None:
    """``app`` is running: it becomes the current app outside any node's tasks."""
    if app not in _running:
        _running.append(app)


def app_stopped(app: EddaApp) -> None:
    if app in _running:
        _running.remove(app)


def app_context(app: EddaApp) -> contextvars.Context:
    """A context in which ``app`` is the current app, to copy for the node's tasks."""
    context = contextvars.copy_context()
    context.run(_current.set, app)
    return context


def current_app() -> EddaApp | None:
    """The app of the node whose task this is, else the newest running app."""
    app = _current.get()
    if app is not None and app in _running:
        return app
    return _running[-1] if _running else None
