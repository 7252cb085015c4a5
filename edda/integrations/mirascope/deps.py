"""`DurableDeps`: an agent's dependencies and its conversation so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from edda.runtime.serialization import to_jsonable

T = TypeVar("T")


@dataclass
class DurableDeps(Generic[T]):
    """What a `DurableAgent` works with: your data, and the conversation history.

    The history is plain ``{"role", "content"}`` dicts. An agent appends each
    user message and answer after a turn; the workflow body does this, so on
    replay the same history is rebuilt from the journaled answers.

    Attributes:
        data: Your dependencies (ids, settings; live clients are fine too, they
            are never journaled).
        history: The conversation so far.
    """

    data: T
    history: list[dict[str, str]] = field(default_factory=list)

    def add_user_message(self, content: str) -> None:
        """Append a user message to the history."""
        self.history.append({"role": "user", "content": content})

    def add_assistant_message(self, content: str) -> None:
        """Append an assistant message to the history."""
        self.history.append({"role": "assistant", "content": content})

    def add_system_message(self, content: str) -> None:
        """Append a system message to the history."""
        self.history.append({"role": "system", "content": content})

    def clear_history(self) -> None:
        """Forget the conversation."""
        self.history.clear()

    def to_dict(self) -> dict[str, Any]:
        """``{"data": ..., "history": [...]}`` as JSON data.

        Raises:
            NotSerializableError: If ``data`` has no JSON form (a `TypeError`).
        """
        return {"data": to_jsonable(self.data, what="DurableDeps.data"),
                "history": [dict(message) for message in self.history]}
