"""Observability hooks: `WorkflowHooks`, `HooksBase`, and how the runtime calls them.

Every hook is optional and async. A hook that raises is logged and ignored: an
observer never changes the outcome of a workflow. Completion, failure and
cancellation hooks fire however the instance got there (started inline,
recovered after a crash, or restarted by the supervisor). ``on_workflow_start``
fires once per instance, when it is first started, not again on recovery.

Beyond Edda's hooks, `TracingHooks` names four optional methods for observers
that follow a run across processes and CloudEvents (the OpenTelemetry
integration implements them). They are looked up with ``getattr`` like the
others, so a hooks object without them is never asked.
"""

from __future__ import annotations

import logging
from abc import ABC
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

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


class TracingHooks(Protocol):
    """Optional hooks beyond Edda's, for observers that trace a run across
    processes and CloudEvents. The runtime knows nothing of any tracing library:
    it hands over what it has (the stored input, a CloudEvent's extension
    attributes) and stores what it is given (extension attributes for outgoing
    events).
    """

    async def on_workflow_activated(
        self, instance_id: str, workflow_name: str, input_data: dict[str, Any],
        started_at: float,
    ) -> None:
        """A run of the instance begins in this process: right after
        ``on_workflow_start``, and again each time it is re-activated (after
        passivation, a restart or a crash, or on another node), where
        ``on_workflow_start`` never fired. ``started_at`` is when the instance
        was started (UNIX seconds, by the app's clock); ``input_data`` its stored
        input."""

    async def on_compensation(
        self, instance_id: str, workflow_name: str, compensation_name: str,
        registered_at: str, error: Exception | None,
    ) -> None:
        """A compensation ran (``error`` is None) or failed for good.
        ``registered_at`` is the position of the step it undoes."""

    async def on_event_context(
        self, instance_id: str, event_type: str, extensions: dict[str, Any]
    ) -> None:
        """A live ``wait_event`` received a CloudEvent; ``extensions`` are its
        extension attributes (lower-cased, such as ``traceparent``). Fired just
        before ``on_event_received``, not on replay."""

    def outgoing_event_extensions(self, instance_id: str | None) -> Mapping[str, Any]:
        """Extension attributes (such as ``traceparent``) to add to a CloudEvent
        being sent now: by ``send_event_transactional`` (stored with the outbox
        row, so the relayer sends them) and by ``send_event``. ``instance_id`` is
        the sending instance, or None outside a workflow. Synchronous; the
        caller's own extensions win over these."""
        ...


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


def ask(hooks: object | None, name: str, *args: Any) -> Any:
    """Call synchronous hook ``name`` on ``hooks`` if it has one; its answer, or
    None if it has none or raised (logged)."""
    if hooks is None:
        return None
    method = getattr(hooks, name, None)
    if method is None:
        return None
    try:
        return method(*args)
    except Exception:
        log.exception("hook %s of %r raised; ignored", name, type(hooks).__name__)
        return None
