"""The nodes a graph returns to wait durably, and the event a wait hands on.

`Sleep` and `WaitForEvent` are pydantic-graph nodes, so a node can name them in
its return annotation (``-> Sleep | ChargeCard``) and the graph builder accepts
them (``g.node(Sleep)``). They are never run: `DurableGraph` takes them as
orders to wait at workflow level, through `edda.sleep` and `edda.wait_event`,
and then goes on with their ``next_node``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_graph import BaseNode, End, GraphRunContext

from edda.runtime.events import check_event_type
from edda.runtime.timers import check_seconds


def _check_next(node: object, marker: str) -> None:
    if not isinstance(node, BaseNode | End):
        raise TypeError(f"{marker}.next_node must be a graph node or End(...), "
                        f"got {type(node).__name__}")


@dataclass
class Sleep(BaseNode[Any, Any, Any]):
    """Return it from a node to wait ``seconds`` durably, then run ``next_node``.

    The timer survives crashes and restarts; while it runs, the workflow holds
    no worker.

    Attributes:
        seconds: How long to wait (a finite number >= 0).
        next_node: The node to run afterwards (or an `End`).
    """

    seconds: float
    next_node: BaseNode[Any, Any, Any] | End[Any]

    def __post_init__(self) -> None:
        self.seconds = check_seconds(self.seconds, "Sleep seconds")
        _check_next(self.next_node, "Sleep")

    async def run(self, ctx: GraphRunContext[Any, Any]) -> End[Any]:
        """Not runnable: `DurableGraph` handles it.

        Raises:
            RuntimeError: Always.
        """
        raise RuntimeError("Sleep is a marker for DurableGraph: return it from a node of a graph "
                           "run by DurableGraph.run(), which sleeps durably and goes on with "
                           "next_node")


@dataclass
class WaitForEvent(BaseNode[Any, Any, Any]):
    """Return it from a node to wait durably for a CloudEvent, then run ``next_node``.

    ``next_node`` receives the event as ``ctx.last_event`` (a `ReceivedEvent`).

    Attributes:
        event_type: The CloudEvent ``type`` to wait for (as `edda.wait_event`).
        next_node: The node to run once the event has arrived (or an `End`).
        timeout_seconds: Give up after this long with `edda.EventTimeoutError`,
            a `TimeoutError` (None: wait for ever).
    """

    event_type: str
    next_node: BaseNode[Any, Any, Any] | End[Any]
    timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        check_event_type(self.event_type)
        if self.timeout_seconds is not None:
            self.timeout_seconds = check_seconds(self.timeout_seconds, "timeout_seconds")
        _check_next(self.next_node, "WaitForEvent")

    async def run(self, ctx: GraphRunContext[Any, Any]) -> End[Any]:
        """Not runnable: `DurableGraph` handles it.

        Raises:
            RuntimeError: Always.
        """
        raise RuntimeError("WaitForEvent is a marker for DurableGraph: return it from a node of a "
                           "graph run by DurableGraph.run(), which waits for the event durably "
                           "and goes on with next_node")


@dataclass(frozen=True)
class ReceivedEvent:
    """The CloudEvent a `WaitForEvent` waited for, as the next node sees it.

    Not the same class as `edda.ReceivedEvent`, which `edda.wait_event` returns.

    Attributes:
        event_type: The CloudEvent ``type``.
        data: The event's data (a dict for JSON objects).
        metadata: The event's extension attributes.
    """

    event_type: str
    data: Any = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
