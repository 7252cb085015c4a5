"""Observability hooks: `WorkflowHooks`, `HooksBase`, and how the runtime calls them.

Every hook is optional and async. A hook that raises is logged and ignored: an
observer never changes the outcome of a workflow. Completion, failure and
cancellation hooks fire however the instance got there (started inline,
recovered after a crash, or restarted by the supervisor). ``on_workflow_start``
fires once per instance, when it is first started, not again on recovery.
"""

from __future__ import annotations

import logging
from abc import ABC
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("edda.hooks")


@runtime_checkable
class WorkflowHooks(Protocol):
    """What an observer of workflows may implement (all methods optional)."""

    async def on_workflow_start(
        self, instance_id: str, workflow_name: str, input_data: dict[str, Any]
    ) -> None: ...

    async def on_workflow_complete(
        self, instance_id: str, workflow_name: str, result: Any
    ) -> None: ...

    async def on_workflow_failed(
        self, instance_id: str, workflow_name: str, error: Exception
    ) -> None: ...

    async def on_workflow_cancelled(self, instance_id: str, workflow_name: str) -> None: ...

    async def on_activity_start(
        self, instance_id: str, activity_id: str, activity_name: str, is_replaying: bool
    ) -> None: ...

    async def on_activity_complete(
        self, instance_id: str, activity_id: str, activity_name: str, result: Any, cache_hit: bool
    ) -> None: ...

    async def on_activity_failed(
        self, instance_id: str, activity_id: str, activity_name: str, error: Exception
    ) -> None: ...

    async def on_activity_retry(
        self,
        instance_id: str,
        activity_id: str,
        activity_name: str,
        error: Exception,
        attempt: int,
        delay: float,
    ) -> None: ...

    async def on_event_sent(
        self, event_type: str, event_source: str, event_data: dict[str, Any]
    ) -> None: ...

    async def on_event_received(
        self, instance_id: str, event_type: str, event_data: dict[str, Any]
    ) -> None: ...


class HooksBase(WorkflowHooks, ABC):
    """A base class whose hooks all do nothing; override what you need."""

    async def on_workflow_start(
        self, instance_id: str, workflow_name: str, input_data: dict[str, Any]
    ) -> None:
        return None

    async def on_workflow_complete(self, instance_id: str, workflow_name: str, result: Any) -> None:
        return None

    async def on_workflow_failed(
        self, instance_id: str, workflow_name: str, error: Exception
    ) -> None:
        return None

    async def on_workflow_cancelled(self, instance_id: str, workflow_name: str) -> None:
        return None

    async def on_activity_start(
        self, instance_id: str, activity_id: str, activity_name: str, is_replaying: bool
    ) -> None:
        return None

    async def on_activity_complete(
        self, instance_id: str, activity_id: str, activity_name: str, result: Any, cache_hit: bool
    ) -> None:
        return None

    async def on_activity_failed(
        self, instance_id: str, activity_id: str, activity_name: str, error: Exception
    ) -> None:
        return None

    async def on_activity_retry(
        self,
        instance_id: str,
        activity_id: str,
        activity_name: str,
        error: Exception,
        attempt: int,
        delay: float,
    ) -> None:
        return None

    async def on_event_sent(
        self, event_type: str, event_source: str, event_data: dict[str, Any]
    ) -> None:
        return None

    async def on_event_received(
        self, instance_id: str, event_type: str, event_data: dict[str, Any]
    ) -> None:
        return None


async def fire(hooks: object | None, name: str, *args: Any) -> None:
    """Call hook ``name`` on ``hooks`` if it has one; log and swallow its errors."""
    if hooks is None:
        return
    method = getattr(hooks, name, None)
    if method is None:
        return
    try:
        await method(*args)
    except Exception:
        log.exception("hook %s of %r raised; ignored", name, type(hooks).__name__)
