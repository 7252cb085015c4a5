"""Turning user values into journal JSON and back into their types.

Values are stored as JSON-compatible data (pydantic's JSON mode: models, enums,
datetimes, UUIDs, dataclasses, ``bytes`` as base64). They are restored by type:
the annotation of the parameter or return value where there is one, otherwise
the recorded type of the value itself. Annotations written as strings (modules
with ``from __future__ import annotations``) are resolved against the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import traceback
import typing
from typing import Any

import msgspec
import pydantic
import pydantic_core

from edda.journal.entries import ErrorInfo
from edda.runtime.errors import TerminalError
from edda.runtime.names import resolve, stable_name

if typing.TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("edda.serialization")

_PLAIN = (dict, list, str, int, float, bool, type(None))
_encoder = msgspec.json.Encoder()


class NotSerializableError(TypeError):
    """A value cannot be stored in the journal."""


def to_jsonable(value: Any, *, what: str) -> Any:
    """JSON-compatible data for ``value``.

    Args:
        value: A user value.
        what: What the value is, for the error message (``"result of activity 'x'"``).

    Raises:
        NotSerializableError: If the value (or something inside it) has no JSON form.
    """
    if type(value) in (str, int, bool, type(None)):
        return value
    try:
        data = pydantic_core.to_jsonable_python(value, bytes_mode="base64",
                                                inf_nan_mode="constants")
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        raise NotSerializableError(
            f"the {what} is a {_describe(value)}, which cannot be stored in the journal: {exc}. "
            "Return or pass JSON-compatible values: str, int, float, bool, None, lists and "
            "dicts of them, pydantic models, dataclasses, enums, datetimes or bytes"
        ) from exc
    bad = _non_finite(data)
    if bad is not None:
        raise NotSerializableError(
            f"the {what} holds the float {bad!r}, which JSON cannot store (it would come back "
            "as None on replay); use None, a string or a finite number instead")
    return data


def _non_finite(data: Any) -> float | None:
    """The first infinite or NaN float in JSON-compatible ``data``, if any."""
    kind = type(data)
    if kind is float:
        return None if math.isfinite(data) else data
    if kind is dict:
        for item in data.values():
            found = _non_finite(item)
            if found is not None:
                return found
    elif kind is list:
        for item in data:
            found = _non_finite(item)
            if found is not None:
                return found
    return None


def _describe(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def type_path(value: Any) -> str | None:
    """The stored name of a value's type that plain JSON would not bring back, else None.

    ``"module:qualname"``; the library's own types under their public path (`names`).
    """
    cls = type(value)
    if cls in _PLAIN or "<locals>" in cls.__qualname__:
        return None
    return stable_name(cls)


def import_path(path: str) -> Any:
    """The object stored as ``"module:qualname"``, or None if it cannot be found.

    Names older journals hold for library types resolve through `names.ALIASES`.
    """
    return resolve(path)


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return pydantic.TypeAdapter(tp)
    return pydantic.TypeAdapter(tp, config=pydantic.ConfigDict(val_json_bytes="base64"))


def _adapter_of(tp: Any) -> pydantic.TypeAdapter[Any]:
    """The (cached) adapter for annotation ``tp``; an unhashable one gets a fresh one."""
    try:
        return _adapter(tp)
    except TypeError:  # unhashable annotation
        return pydantic.TypeAdapter(tp)


def fit(value: Any, tp: Any) -> Any:
    """``value`` checked against annotation ``tp`` by pydantic's rules (as a model
    field would be: ``"1.5"`` fits ``float``, ``"lots"`` does not), converted to it.
    A value without annotation, or with one pydantic cannot check, passes as is.

    Raises:
        pydantic.ValidationError: If the value does not fit.
    """
    if tp in (None, Any, object, inspect.Parameter.empty):
        return value
    try:
        adapter = _adapter_of(tp)
    except pydantic.PydanticSchemaGenerationError:
        return value
    return adapter.validate_python(value)


def needs_restore(tp: Any) -> bool:
    """Whether values of annotation ``tp`` need converting from JSON data."""
    return tp not in (None, Any, object, inspect.Parameter.empty) and tp not in _PLAIN


def restore(data: Any, tp: Any) -> Any:
    """``data`` (as stored) converted to type ``tp``; unchanged where no type is known.

    Raises:
        pydantic.ValidationError: If the data does not fit the type.
    """
    if not needs_restore(tp):
        return data
    if dataclasses.is_dataclass(tp):
        # A dataclass refuses a config of its own but follows the one of a tuple
        # around it, so its bytes fields come back from base64 as everywhere else.
        return restore([data], tuple[tp])[0]
    return _adapter_of(tp).validate_json(_encoder.encode(data))


@functools.lru_cache(maxsize=1024)
def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of ``func`` (string annotations included).

    Annotations that cannot be resolved are left out, with a warning once.
    """
    try:
        return typing.get_type_hints(func)
    except Exception as exc:
        hints: dict[str, Any] = {}
        raw = getattr(func, "__annotations__", {})
        namespace = getattr(func, "__globals__", {})
        for name, annotation in raw.items():
            try:
                hints[name] = (
                    eval(annotation, namespace) if isinstance(annotation, str) else annotation
                )
            except Exception:
                continue
        log.warning("some annotations of %s cannot be resolved (%s); values of those are not "
                    "converted back to their types on replay", func.__qualname__, exc)
        return hints


def error_info(exc: BaseException) -> ErrorInfo:
    """An exception as a journal record, its cause included; what cannot be stored
    is left out, with a warning once per type and attribute."""
    lost: list[tuple[str, NotSerializableError]] = []
    info = _error_record(exc, lost)
    _warn_lost(exc, lost)
    return info


def record_error(exc: Exception) -> tuple[ErrorInfo, BaseException]:
    """An activity's failure as its journal record, and the exception the live run
    raises for it: the same one every replay will raise.

    A :class:`TerminalError` carries its details to the workflow on purpose, so one
    whose arguments or attributes cannot be stored is refused: the failure recorded
    is a :class:`NotSerializableError` that names the value. Any other exception is
    recorded without what cannot be stored (with a warning), and the live run sees
    it that way too.
    """
    lost: list[tuple[str, NotSerializableError]] = []
    info = _error_record(exc, lost)
    error: BaseException = exc
    if lost and isinstance(exc, TerminalError):
        what, problem = lost[0]
        error = NotSerializableError(
            f"{what} cannot be stored in the journal ({problem}); a TerminalError "
            "carries its details to the workflow, so give it JSON-compatible values")
        error.__cause__ = exc
        info = _error_record(error, [])
    else:
        _warn_lost(exc, lost)
    return info, as_replayed(error, info, exact=not lost)


def _error_record(exc: BaseException, lost: list[tuple[str, NotSerializableError]]) -> ErrorInfo:
    qualname = type(exc).__qualname__
    try:
        args = to_jsonable(list(exc.args), what="exception arguments")
    except NotSerializableError as problem:
        args = []
        lost.append((f"the arguments of {qualname}", problem))
    attributes: dict[str, Any] = {}
    for name, value in vars(exc).items():
        if name.startswith("_"):
            continue
        try:
            attributes[name] = to_jsonable(value, what=f"attribute {name!r}")
        except NotSerializableError as problem:
            lost.append((f"attribute {name!r} of {qualname}", problem))
    cause = exc.__cause__
    module, _, stable_qualname = stable_name(type(exc)).partition(":")
    return ErrorInfo(
        module=module,
        qualname=stable_qualname,
        message=str(exc),
        args=args,
        attributes=attributes,
        traceback="".join(traceback.format_exception(exc)),
        cause=_error_record(cause, lost) if cause is not None and cause is not exc else None,
    )


def _warn_lost(exc: BaseException, lost: list[tuple[str, NotSerializableError]]) -> None:
    for what, problem in lost:
        key = f"{stable_name(type(exc))}:{what}"
        if key not in _warned_types:  # said once per type and value, not dropped silently
            _warned_types.add(key)
            log.warning("%s cannot be stored in the journal, so the exception is raised "
                        "without it, live as on replay; store JSON-compatible values (%s)",
                        what, problem)


def rebuild_error(info: ErrorInfo) -> BaseException:
    """The recorded exception, raised again as its own type where it can be imported.

    Falls back to ``Exception("Type: message")`` for a type that cannot be imported.
    """
    cls = import_path(f"{info.module}:{info.qualname}")
    error: BaseException
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            error = cls(*info.args)
        except Exception:
            error = cls.__new__(cls)
            error.args = tuple(info.args) or (info.message,)
    else:
        error = Exception(f"{info.qualname}: {info.message}")
        cls = None
    if cls is not None and info.attributes:
        with contextlib.suppress(Exception):
            vars(error).update(info.attributes)
    if info.cause is not None:
        error.__cause__ = rebuild_error(info.cause)
    return error


def as_replayed(error: BaseException, info: ErrorInfo, *, exact: bool = True) -> BaseException:
    """The exception a live run raises for ``error`` once it is recorded as ``info``:
    ``error`` itself when a replay rebuilds it exactly, else what a replay will raise
    (a class defined inside a function cannot be imported again; a value that could
    not be stored is missing), so the live run and every replay see the same."""
    importable = import_path(f"{info.module}:{info.qualname}") is type(error)
    if importable and exact:
        return error
    rebuilt = rebuild_error(info)
    key = f"{info.module}:{info.qualname}"
    if not importable and key not in _warned_types:
        _warned_types.add(key)
        log.warning("%s.%s cannot be imported again (defined inside a function?), so it is "
                    "raised as %s, the same as on replay; define exception classes at module "
                    "level", info.module, info.qualname, type(rebuilt).__name__)
    rebuilt.__context__ = error  # shown in its traceback; the cause chain stays as on replay
    return rebuilt


_warned_types: set[str] = set()
