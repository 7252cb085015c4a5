"""LlamaIndex events and store state as journal JSON, and back.

An event is recorded as its class (``"module:qualname"``), its declared fields,
its free-form fields (LlamaIndex keeps those in ``_data``) and, for a
`StopEvent`, its result. Values go through LlamaIndex's `JsonSerializer`, which
records the class of every pydantic model inside them, so they come back as the
types LlamaIndex itself would restore; the event class's own validation then
rebuilds the declared fields.

Every value is checked on the way in: one that has no JSON form is refused with
an error naming the step and the field, before anything is journaled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflows.context.serializers import JsonSerializer
from workflows.context.state_store import DictState
from workflows.events import Event, StopEvent

from edda.integrations.llamaindex.errors import WorkflowReplayError
from edda.runtime.serialization import NotSerializableError, import_path, to_jsonable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pydantic import BaseModel

_serializer = JsonSerializer()


def _value(value: Any, what: str) -> Any:
    try:
        wrapped = _serializer.serialize_value(value)
    except Exception as exc:
        raise NotSerializableError(
            f"the {what} is a {type(value).__qualname__}, which cannot be stored in the "
            f"journal: {exc}") from exc
    return to_jsonable(wrapped, what=what)


def _restore(data: Any, what: str) -> Any:
    try:
        return _serializer.deserialize_value(data)
    except Exception as exc:
        raise WorkflowReplayError(f"the recorded {what} cannot be restored: {exc}") from exc


def class_key(cls: type) -> str:
    """``"module:qualname"`` of an event class."""
    return f"{cls.__module__}:{cls.__qualname__}"


class EventCodec:
    """Encodes events for the journal and decodes them with the workflow's own classes.

    Classes named in the workflow's step annotations are found by name even when
    they cannot be imported (classes defined inside a function); other classes
    are imported by path.
    """

    def __init__(self, classes: Iterable[type[Event]]) -> None:
        self._classes = {class_key(cls): cls for cls in classes}

    def encode(self, event: Event, what: str) -> dict[str, Any]:
        """Journal JSON for ``event``.

        Args:
            event: The event.
            what: What the event is, for errors (``"OrderEvent returned by step 'x'"``).

        Raises:
            NotSerializableError: Naming the field that has no JSON form, or the
                class if it could not be found again on replay.
        """
        cls = type(event)
        key = class_key(cls)
        if key not in self._classes and import_path(key) is not cls:
            raise NotSerializableError(
                f"the {what} is of class {cls.__qualname__}, which a replay could not find: "
                "define the event class at module level, or name it in a step's annotations")
        fields = {name: _value(getattr(event, name), f"field {name!r} of the {what}")
                  for name in cls.model_fields}
        record: dict[str, Any] = {"type": key, "fields": fields}
        extra = event._data
        if extra:
            record["extra"] = {name: _value(value, f"field {name!r} of the {what}")
                               for name, value in extra.items()}
        if isinstance(event, StopEvent) and event._result is not None:
            record["result"] = _value(event._result, f"result of the {what}")
        return record

    def decode(self, record: dict[str, Any]) -> Event:
        """The event ``record`` holds.

        Raises:
            WorkflowReplayError: If its class is gone or its fields no longer fit it.
        """
        key = record["type"]
        cls = self._classes.get(key) or import_path(key)
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise WorkflowReplayError(
                f"the journal records an event of class {key}, which cannot be imported; "
                "keep event classes importable while runs that used them are unfinished")
        what = f"event {cls.__qualname__}"
        params = {}
        for name, value in (*record["fields"].items(), *record.get("extra", {}).items()):
            params[name] = _restore(value, f"field {name!r} of the {what}")
        if "result" in record:
            params["result"] = _restore(record["result"], f"result of the {what}")
        try:
            return cls(**params)
        except Exception as exc:
            raise WorkflowReplayError(
                f"the recorded {what} no longer fits its class: {exc}") from exc


def encode_state(state: BaseModel, step: str) -> dict[str, Any]:
    """Journal JSON for the store's state after ``step``.

    Raises:
        NotSerializableError: Naming the step and the key (or field) that has no
            JSON form.
    """
    if isinstance(state, DictState):
        return {name: _value(value, f"store key {name!r} set by step {step!r}")
                for name, value in state._data.items()}
    return {name: _value(getattr(state, name), f"state field {name!r} set by step {step!r}")
            for name in type(state).model_fields}


def decode_state(data: dict[str, Any], state_type: type[BaseModel]) -> BaseModel:
    """The store state ``data`` holds, as ``state_type``.

    Raises:
        WorkflowReplayError: If the recorded state no longer fits ``state_type``.
    """
    values = {name: _restore(value, f"store key {name!r}") for name, value in data.items()}
    try:
        if state_type is DictState:
            return DictState(**values)
        return state_type.model_validate(values)
    except Exception as exc:
        raise WorkflowReplayError(
            f"the recorded store state no longer fits {state_type.__qualname__}: {exc}"
        ) from exc
