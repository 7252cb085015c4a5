"""The names the journal stores for classes, and the names older journals hold.

An error's class and an activity result's class are journaled by name
(``"module:qualname"``), so a replay raises and returns the same types. For the
library's own classes that name must not depend on where a class lives today: a
journal naming ``edda.runtime.errors:TerminalError`` would replay, once that module
moved, as a plain `Exception`, and the workflow's ``except TerminalError`` would
stop matching.

So every library class a journal can hold is stored under its public path:
``edda:TerminalError``, ``edda.integrations.llamaindex:WorkflowReplayError``.
Public classes report that module themselves (the façades set ``__module__``).
Exported dataclasses keep their own, because pydantic resolves their string
annotations there; `ALIASES` gives them their public name instead.

`ALIASES` maps every other name a release has stored for a library class to its
public path. It is a record of history: entries are added when a class moves and
never removed. Resolution consults it before importing anything, so old journals
never depend on old module paths; only names it does not know (the user's own
classes) are imported as written.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

_LLAMAINDEX = "edda.integrations.llamaindex"

ALIASES: dict[str, str] = {
    # Stored by release 0.1.
    "edda.journal.channels:ChannelModeConflictError": "edda:ChannelModeConflictError",
    "edda.runtime.channels:ChannelMessage": "edda:ChannelMessage",
    "edda.runtime.channels:ChannelNotSubscribedError": "edda:ChannelNotSubscribedError",
    "edda.runtime.compensation:CompensationNotFoundError": "edda:CompensationNotFoundError",
    "edda.runtime.errors:InstanceTakenOverError": "edda:InstanceTakenOverError",
    "edda.runtime.errors:NonDeterminismError": "edda:NonDeterminismError",
    "edda.runtime.errors:RetryExhaustedError": "edda:RetryExhaustedError",
    "edda.runtime.errors:TerminalError": "edda:TerminalError",
    "edda.runtime.errors:WorkflowCancelledException": "edda:WorkflowCancelledException",
    "edda.runtime.errors:WorkflowNotInitializedError": "edda:WorkflowNotInitializedError",
    "edda.runtime.events:EventTimeoutError": "edda:EventTimeoutError",
    "edda.runtime.events:ReceivedEvent": "edda:ReceivedEvent",
    "edda.runtime.retry:RetryPolicy": "edda:RetryPolicy",
    "edda.runtime.serialization:NotSerializableError": "edda:NotSerializableError",
    f"{_LLAMAINDEX}.errors:WorkflowExecutionError": f"{_LLAMAINDEX}:WorkflowExecutionError",
    f"{_LLAMAINDEX}.errors:WorkflowReplayError": f"{_LLAMAINDEX}:WorkflowReplayError",
    f"{_LLAMAINDEX}.events:DurableSleepEvent": f"{_LLAMAINDEX}:DurableSleepEvent",
    f"{_LLAMAINDEX}.events:DurableWaitEvent": f"{_LLAMAINDEX}:DurableWaitEvent",
    f"{_LLAMAINDEX}.events:ResumeEvent": f"{_LLAMAINDEX}:ResumeEvent",
}


def publish(namespace: dict[str, Any], *, dataclasses_too: bool = True) -> None:
    """Make the classes a façade exports (``namespace["__all__"]``) report the façade as
    their module, so that the journal stores them by their public path and moving one
    never changes what is stored. ``dataclasses_too=False`` leaves dataclasses their own
    module (where pydantic resolves their string annotations; `ALIASES` names them)."""
    module = namespace["__name__"]
    for name in namespace["__all__"]:
        obj = namespace[name]
        if isinstance(obj, type) and (dataclasses_too or not dataclasses.is_dataclass(obj)):
            obj.__module__ = module


def stable_name(cls: type) -> str:
    """The ``"module:qualname"`` the journal stores for ``cls``."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    return ALIASES.get(path, path)


def resolve(name: str) -> Any:
    """The class (or other object) stored as ``"module:qualname"``, or None if it is gone."""
    module_name, _, qualname = ALIASES.get(name, name).partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj
