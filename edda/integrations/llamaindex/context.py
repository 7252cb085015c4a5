"""`StepContext`: the ``ctx`` a step receives, shaped like LlamaIndex's `Context`.

Each attempt of a step gets a fresh one over the state the journal holds. What
the step does through it (store writes, sent events, collected events) becomes
part of the step's journaled result when the step returns, and is dropped when
the attempt fails: a retried or replayed step sees exactly what the journal says.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, NoReturn

from workflows.events import Event

from edda.runtime.errors import TerminalError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from workflows.context.state_store import InMemoryStateStore

    from edda.integrations.llamaindex.steps import StepSpec
    from edda.runtime.context import WorkflowContext


class StepContext:
    """What a durable step can use of LlamaIndex's `Context`.

    Supported: ``store`` (LlamaIndex's own state store: ``get``, ``set``,
    ``get_state``, ``set_state``, ``edit_state``, ``clear``), ``send_event``,
    ``collect_events`` and ``write_event_to_stream``. ``wait_for_event`` raises:
    return a `DurableWaitEvent` instead.

    Attributes:
        edda: The Edda `WorkflowContext` of the step's activity, for
            ``ctx.edda.session`` and `edda.send_event_transactional`.
        step_name: The running step.
    """

    def __init__(
        self,
        *,
        step: StepSpec,
        store: InMemoryStateStore[Any],
        edda: WorkflowContext,
        steps: Mapping[str, StepSpec],
        buffers: dict[str, list[Event]],
        on_stream_event: Callable[[Event], object] | None,
    ) -> None:
        self.step_name = step.name
        self.edda = edda
        self._store = store
        self._steps = steps
        self._on_stream_event = on_stream_event
        #: Events sent with send_event, with their target step (None: all).
        self.sent: list[tuple[Event, str | None]] = []
        #: This step's collect_events buffers, and what it did to them, in order:
        #: ``(buffer_id, event)`` added an event, ``(buffer_id, None)`` emptied one.
        self.buffers = buffers
        self.buffer_changes: list[tuple[str, Event | None]] = []

    @property
    def store(self) -> InMemoryStateStore[Any]:
        """The run's state store; writes are journaled when the step returns."""
        return self._store

    @property
    def is_running(self) -> bool:
        """Always True inside a step."""
        return True

    def send_event(self, message: Event, step: str | None = None) -> None:
        """Send ``message`` to every step that takes it, or to ``step`` only.

        It is delivered after this step returns, in the order sent and before
        the event the step returns.

        Raises:
            TerminalError: If ``message`` is not an Event, or ``step`` does not
                exist or does not take it (a retry would not help).
        """
        if not isinstance(message, Event):
            raise TerminalError(f"ctx.send_event() in step {self.step_name!r} needs a LlamaIndex "
                                f"Event, got {type(message).__qualname__}")
        if step is not None:
            target = self._steps.get(step)
            if target is None:
                raise TerminalError(
                    f"ctx.send_event(..., step={step!r}) in step {self.step_name!r}: the workflow "
                    f"has no such step; its steps are {', '.join(self._steps)}")
            if not target.takes(message):
                raise TerminalError(
                    f"ctx.send_event(..., step={step!r}) in step {self.step_name!r}: that step "
                    f"does not take {type(message).__qualname__}")
        self.sent.append((message, step))

    def collect_events(self, ev: Event, expected: list[type[Event]],
                       buffer_id: str | None = None) -> list[Event] | None:
        """Buffer ``ev`` until one event of each ``expected`` type has arrived.

        As in LlamaIndex: returns None while some are missing, then all of them
        in the order of ``expected`` and empties the buffer. Buffers belong to
        the step (and ``buffer_id``) and are journaled with it.
        """
        if not expected:
            return []
        key = buffer_id or "default"
        held = self.buffers.get(key, [])
        missing = Counter(expected) - Counter(type(e) for e in held)
        if missing != Counter([type(ev)]):
            if type(ev) in missing:
                self.buffers[key] = [*held, ev]
                self.buffer_changes.append((key, ev))
            return None
        by_type: dict[type[Event], list[Event]] = {}
        for event in [*held, ev]:
            by_type.setdefault(type(event), []).append(event)
        self.buffers.pop(key, None)
        self.buffer_changes.append((key, None))
        return [by_type[kind].pop(0) for kind in expected]

    def write_event_to_stream(self, ev: Event | None) -> None:
        """Hand ``ev`` to the runner's ``on_stream_event`` callback, if it has one.

        The callback runs during the step, so a retried attempt streams again
        and a replayed step does not stream at all; nothing is journaled.
        """
        if ev is not None and self._on_stream_event is not None:
            self._on_stream_event(ev)

    async def wait_for_event(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not durable: raises. Return a `DurableWaitEvent` from the step instead."""
        raise TerminalError(
            f"ctx.wait_for_event() in step {self.step_name!r} cannot be made durable; return "
            "DurableWaitEvent(event_type=...) from the step and take the ResumeEvent in another "
            "step instead")

    def __repr__(self) -> str:
        return f"<StepContext step={self.step_name!r}>"
