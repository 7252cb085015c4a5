"""Edda's ``edda.pydantic_utils`` module: pydantic models and enums in workflow data.

The runtime converts values itself (see docs/compat.md); these helpers are kept
for code written against Edda that calls them directly.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from typing import Any

import pydantic

__all__ = (
    "enum_value_to_enum",
    "extract_enum_from_annotation",
    "extract_pydantic_model_from_annotation",
    "from_json_dict",
    "is_enum_class",
    "is_enum_instance",
    "is_pydantic_instance",
    "is_pydantic_model",
    "to_json_dict",
)


def is_pydantic_model(obj: Any) -> bool:
    """Whether ``obj`` is a pydantic model class."""
    return inspect.isclass(obj) and issubclass(obj, pydantic.BaseModel)


def is_pydantic_instance(obj: Any) -> bool:
    """Whether ``obj`` is an instance of a pydantic model."""
    return isinstance(obj, pydantic.BaseModel)


def is_enum_class(obj: Any) -> bool:
    """Whether ``obj`` is an Enum class."""
    return inspect.isclass(obj) and issubclass(obj, enum.Enum)


def is_enum_instance(obj: Any) -> bool:
    """Whether ``obj`` is a member of an Enum."""
    return isinstance(obj, enum.Enum)


def to_json_dict(obj: Any) -> Any:
    """``obj`` as JSON-compatible data: a model as its JSON-mode dump, an enum member
    as its value, anything else unchanged."""
    if isinstance(obj, pydantic.BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def from_json_dict(data: dict[str, Any], model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    """A ``model`` instance validated from ``data``."""
    return model.model_validate(data)


def _unwrapped(annotation: Any) -> list[Any]:
    """The annotation itself, or the members of an Optional/Union."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def extract_pydantic_model_from_annotation(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model an annotation names (``Model`` or ``Model | None``), or None."""
    for candidate in _unwrapped(annotation):
        if is_pydantic_model(candidate):
            return typing.cast("type[pydantic.BaseModel]", candidate)
    return None


def extract_enum_from_annotation(annotation: Any) -> type[enum.Enum] | None:
    """The Enum an annotation names (``Color`` or ``Color | None``), or None."""
    for candidate in _unwrapped(annotation):
        if is_enum_class(candidate):
            return typing.cast("type[enum.Enum]", candidate)
    return None


def enum_value_to_enum(value: Any, enum_class: type[enum.Enum]) -> enum.Enum:
    """The member of ``enum_class`` with ``value`` (a member is returned as it is).

    Raises:
        ValueError: If no member has that value.
    """
    if isinstance(value, enum_class):
        return value
    return enum_class(value)
