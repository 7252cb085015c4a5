"""Graph nodes, `End` values and graph state as journal JSON, and back.

A node is recorded as its node id and its dataclass fields; it is rebuilt with
the class the graph registers under that id, so node classes defined inside a
function work too. `Sleep` and `WaitForEvent` are recorded as what they order
(``{"sleep": ...}``, ``{"wait": ...}``) with their next node, and `End` as its
data and the data's type.

The state is recorded field by field and restored *into the caller's object*
(dataclass fields, pydantic model fields, or dict keys are set again), each
field converted back by its annotation.

Every value is checked on the way in: one that has no JSON form is refused with
an error naming the node and the field, before anything is journaled.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

import pydantic
from pydantic_graph import BaseNode, End, Graph
from pydantic_graph.join import JoinNode
from pydantic_graph.step import NodeStep, StepNode

from edda.integrations.graph.markers import Sleep, WaitForEvent
from edda.runtime.serialization import (
    NotSerializableError,
    import_path,
    restore,
    to_jsonable,
    type_path,
)


class NodeCodec:
    """Encodes what nodes return, and decodes it with the graph's own node classes."""

    def __init__(self, graph: Graph) -> None:
        #: The graph's node classes by node id; the markers are not run, so not here.
        self.classes: dict[str, type[BaseNode[Any, Any, Any]]] = {
            str(node_id): node.node_type for node_id, node in graph.nodes.items()
            if isinstance(node, NodeStep) and node.node_type not in (Sleep, WaitForEvent)}

    def encode(self, value: object, what: str) -> dict[str, Any]:
        """Journal JSON for a node, a marker or an `End`.

        Args:
            value: What a node returned (or the start node).
            what: What it is, for errors (``"what node 'A' returned"``).

        Raises:
            NotSerializableError: Naming the field that has no JSON form, or
                saying why the value is not something a graph run can go on with.
        """
        if isinstance(value, End):
            data = to_jsonable(value.data, what=f"End data of {what}")
            return {"end": data, "type": type_path(value.data)}
        if isinstance(value, Sleep):
            return {"sleep": value.seconds, "then": self.encode(value.next_node, what)}
        if isinstance(value, WaitForEvent):
            return {"wait": value.event_type, "timeout": value.timeout_seconds,
                    "then": self.encode(value.next_node, what)}
        if isinstance(value, StepNode | JoinNode):
            raise NotSerializableError(
                f"{what} is a {type(value).__name__}: DurableGraph runs graphs of BaseNode "
                "classes; builder steps, joins and forks are not supported")
        if not isinstance(value, BaseNode):
            raise NotSerializableError(
                f"{what} is a {type(value).__qualname__}; a node returns another node of the "
                "graph, End(...), Sleep(...) or WaitForEvent(...)")
        cls = type(value)
        node_id = cls.get_node_id()
        if self.classes.get(node_id) is not cls:
            raise NotSerializableError(
                f"{what} is node {cls.__qualname__}, which is not a node of the graph: add it "
                f"to the graph builder (g.node({cls.__name__})) and name it in the return "
                "annotation of the node that returns it")
        return {"node": node_id, "fields": _fields(value, what)}

    def decode(self, record: dict[str, Any]) -> BaseNode[Any, Any, Any] | End[Any]:
        """The node (or `End`) ``record`` holds.

        Raises:
            NotSerializableError: If the graph no longer has its class, or its
                fields no longer fit it.
        """
        if "end" in record:
            cls = import_path(record["type"]) if record.get("type") else None
            data = record["end"]
            if isinstance(cls, type):
                data = _restore(data, cls, f"the End data ({record['type']})")
            return End(data)
        if "sleep" in record:
            return Sleep(record["sleep"], self.decode(record["then"]))
        if "wait" in record:
            return WaitForEvent(record["wait"], self.decode(record["then"]), record["timeout"])
        node_id = record["node"]
        node_cls = self.classes.get(node_id)
        if node_cls is None:
            raise NotSerializableError(
                f"the journal records node {node_id!r}, which the graph no longer has; keep "
                "node classes in the graph while runs that used them are unfinished")
        hints = _hints(node_cls)
        init: dict[str, Any] = {}
        later: dict[str, Any] = {}
        fields: dict[str, dataclasses.Field[Any]] = (
            {f.name: f for f in dataclasses.fields(node_cls)}
            if dataclasses.is_dataclass(node_cls) else {})
        for name, raw in record["fields"].items():
            value = _restore(raw, hints.get(name), f"field {name!r} of node {node_id}")
            field = fields.get(name)
            (init if field is not None and field.init else later)[name] = value
        try:
            node = node_cls(**init)
        except Exception as exc:
            raise NotSerializableError(
                f"the recorded node {node_id} no longer fits its class: {exc}") from exc
        for name, value in later.items():
            object.__setattr__(node, name, value)
        return node


def _fields(node: object, what: str) -> dict[str, Any]:
    cls = type(node)
    names: list[str]
    if dataclasses.is_dataclass(node):
        names = [f.name for f in dataclasses.fields(node)]
    elif not vars(node):
        names = []
    else:
        raise NotSerializableError(
            f"{what} is node {cls.__qualname__}, which has attributes but is not a dataclass: "
            "decorate node classes with @dataclass so their fields can be journaled")
    return {name: to_jsonable(getattr(node, name),
                              what=f"field {name!r} of node {cls.__name__} ({what})")
            for name in names}


@functools.lru_cache(maxsize=256)
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: values come back as stored
        return {}


def _restore(data: Any, tp: Any, what: str) -> Any:
    try:
        return restore(data, tp)
    except pydantic.PydanticSchemaGenerationError:
        return data
    except Exception as exc:
        raise NotSerializableError(f"{what} cannot be read back from the journal: {exc}") from exc


class StateCodec:
    """The graph state of one run: how to record it and restore it in place.

    A state is a dataclass instance, a pydantic model, a dict, or None.

    Raises:
        TypeError: If the state is of another kind.
    """

    def __init__(self, state: object) -> None:
        self.state = state
        cls = type(state)
        if state is None or isinstance(state, dict):
            self.fields: dict[str, Any] = {}
        elif isinstance(state, pydantic.BaseModel):
            self.fields = {name: info.annotation
                           for name, info in type(state).model_fields.items()}
        elif dataclasses.is_dataclass(state) and not isinstance(state, type):
            hints = _hints(type(state))
            self.fields = {f.name: hints.get(f.name) for f in dataclasses.fields(state)}
        else:
            raise TypeError(
                f"a durable graph's state must be a dataclass instance, a pydantic model, a dict "
                f"or None, got {cls.__qualname__}: it is journaled after every node")

    def encode(self, after: str) -> Any:
        """The state now, as journal JSON.

        Args:
            after: Where the run is, for errors (``"after node 'A'"``).

        Raises:
            NotSerializableError: Naming the field (or key) that has no JSON form.
        """
        state = self.state
        if state is None:
            return None
        if isinstance(state, dict):
            return {str(key): to_jsonable(value, what=f"state key {key!r} {after}")
                    for key, value in state.items()}
        data = {name: to_jsonable(getattr(state, name), what=f"state field {name!r} {after}")
                for name in self.fields}
        extra = getattr(state, "__pydantic_extra__", None)
        if extra:
            data["__pydantic_extra__"] = {
                name: to_jsonable(value, what=f"state field {name!r} {after}")
                for name, value in extra.items()}
        return data

    def restore(self, data: Any) -> None:
        """Put the recorded ``data`` back into the caller's state object.

        Raises:
            NotSerializableError: If a field's value no longer fits its annotation.
        """
        state = self.state
        if state is None:
            return
        if isinstance(state, dict):
            state.clear()
            state.update(data)
            return
        values = {name: _restore(data[name], self.fields[name], f"state field {name!r}")
                  for name in self.fields if name in data}
        for name, value in values.items():
            object.__setattr__(state, name, value)
        if "__pydantic_extra__" in data:
            object.__setattr__(state, "__pydantic_extra__", dict(data["__pydantic_extra__"]))
