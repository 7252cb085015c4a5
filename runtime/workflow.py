"""`@workflow`: an async function whose progress survives crashes.

Input rules (checked by ``start()`` before anything is written):

* Every keyword must name a parameter of the workflow, unless the workflow
  takes ``**kwargs``, which then receives the extra keys. An unknown keyword is
  a `TypeError`; a missing required one too.
* Values are validated against the parameters' annotations (pydantic models,
  enums, ``list[Model]``, datetimes...). The workflow receives the values
  restored from the journal, so a fresh run and a replay see the same objects.
* As in Edda, a workflow with exactly one parameter annotated with a pydantic
  model, started without that parameter's name, gets the whole input validated
  into that model. This is how a CloudEvent's data starts a workflow.
* Every workflow also accepts ``_trace_context``: a W3C trace context (a dict
  of strings: ``traceparent``, ``tracestate``) kept with the input for
  observers such as the OpenTelemetry hooks, so that a run resumed in another
  process continues the caller's trace. The function does not receive it
  unless it names a parameter so.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import warnings
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    TypeVar,
    Union,
    get_args,
    get_origin,
    overload,
)

import pydantic

from edda.runtime.context import check_context_parameter
from edda.runtime.errors import WorkflowNotInitializedError
from edda.runtime.registry import ready_app, register_workflow
from edda.runtime.serialization import fit, restore, to_jsonable, type_hints

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from edda.runtime.app import EddaApp
    from edda.runtime.context import WorkflowContext

P = ParamSpec("P")
R = TypeVar("R")

#: The input key of the caller's trace context (see the module's rules).
TRACE_CONTEXT_KEY = "_trace_context"


def _model_of(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        models = [a for a in get_args(annotation) if _model_of(a) is not None]
        return _model_of(models[0]) if len(models) == 1 else None
    return None


def _trace_context(value: object) -> dict[str, str]:
    if not (isinstance(value, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise TypeError(f"{TRACE_CONTEXT_KEY} must be a dict of strings such as "
                        f"{{'traceparent': '00-...'}}, got {value!r}")
    return dict(value)


class Workflow(Generic[P, R]):
    """A registered workflow; ``await wf.start(**kwargs)`` runs a new instance."""

    def __init__(
        self,
        func: Callable[Concatenate[WorkflowContext, P], Awaitable[R]],
        *,
        event_handler: bool = False,
        lock_timeout_seconds: int | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"Workflow {getattr(func, '__name__', func)!r} must be an async function "
                            "(define it with 'async def')")
        check_context_parameter(func, "Workflow")
        params = list(inspect.signature(func).parameters.values())
        self.func = func
        self.name: str = func.__name__
        self.event_handler = event_handler
        self.lock_timeout_seconds = lock_timeout_seconds
        self._params = {
            p.name: p for p in params[1:]
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        self._var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError) as exc:
            source = f"# Source code not available\n# Workflow: {self.name}\n# Error: {exc}"
        self.source_hash = hashlib.sha256(source.encode()).hexdigest()
        functools.update_wrapper(self, func)
        register_workflow(self)

    def _single_model(self, data: dict[str, Any]) -> tuple[str, type[pydantic.BaseModel]] | None:
        if len(self._params) != 1:
            return None
        (name,) = self._params
        model = _model_of(type_hints(self.func).get(name))
        if model is None or name in data:
            return None
        return name, model

    def takes(self, name: str) -> bool:
        """Whether the workflow function has a parameter called ``name``."""
        return name in inspect.signature(self.func).parameters

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the keyword arguments ``start()`` takes: one property per
        parameter after the context, made by pydantic from the signature. A parameter
        pydantic cannot describe accepts any JSON; a default JSON cannot hold is left
        out (the parameter stays optional)."""
        return copy.deepcopy(_input_schema(self))

    def prepare_input(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check and convert ``start()`` keywords into the journal's input.

        Raises:
            TypeError: For unknown or missing keywords, or unstorable values (the
                error names the argument).
            pydantic.ValidationError: If a value does not fit its annotation, by
                pydantic's rules even for plain ones (``amount: float`` refuses
                ``"lots"``); its locations start with the argument's name.
        """
        if TRACE_CONTEXT_KEY in kwargs and TRACE_CONTEXT_KEY not in self._params:
            rest = dict(kwargs)
            carried = _trace_context(rest.pop(TRACE_CONTEXT_KEY))
            return {**self.prepare_input(rest), TRACE_CONTEXT_KEY: carried}
        if self._single_model(kwargs) is None:
            unknown = sorted(set(kwargs) - set(self._params))
            if unknown and not self._var_keyword:
                raise TypeError(
                    f"{self.name}.start() got unexpected keyword argument(s) "
                    f"{', '.join(map(repr, unknown))}; workflow {self.name!r} accepts "
                    f"{', '.join(map(repr, self._params)) or 'no input'}"
                )
            missing = [
                n for n, p in self._params.items()
                if p.default is inspect.Parameter.empty and n not in kwargs
            ]
            if missing:
                raise TypeError(f"{self.name}.start() missing required keyword argument(s) "
                                f"{', '.join(map(repr, missing))}")
            hints = type_hints(self.func)
            stored: dict[str, Any] = {}
            for key, value in kwargs.items():
                hint = hints.get(key) if key in self._params else None
                try:
                    fitted = fit(value, hint)
                except pydantic.ValidationError as exc:  # the same error, naming the argument
                    raise pydantic.ValidationError.from_exception_data(
                        f"argument {key!r} of {self.name}.start()",
                        [_located(key, problem) for problem in exc.errors()]) from None
                stored[key] = to_jsonable(
                    fitted, what=f"argument {key!r} of workflow {self.name!r}")
            self.build_arguments(stored)
            return stored
        stored = to_jsonable(kwargs, what=f"input of workflow {self.name!r}")
        self.build_arguments(stored)
        return dict(stored)

    def build_arguments(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments the workflow function receives, from its stored input."""
        if TRACE_CONTEXT_KEY in stored and TRACE_CONTEXT_KEY not in self._params:
            stored = {k: v for k, v in stored.items() if k != TRACE_CONTEXT_KEY}
        single = self._single_model(stored)
        if single is not None:
            name, model = single
            return {name: restore(stored, model)}
        hints = type_hints(self.func)
        arguments: dict[str, Any] = {}
        for key, value in stored.items():
            if key in self._params:
                arguments[key] = restore(value, hints.get(key))
            elif self._var_keyword:
                arguments[key] = value
        return arguments

    async def start(self, *args: Any, lock_timeout_seconds: int | None = None,
                    **kwargs: Any) -> str:
        """Start a new instance and run it until it completes, fails or suspends.

        ``instance_id="order-42"`` chooses the instance's id (unless the workflow
        has a parameter of that name, which then gets it): a second start with the
        same id creates nothing and returns when that instance completes or
        waits, wherever it runs.

        Returns:
            The new instance's id.

        Raises:
            WorkflowNotInitializedError: If no EddaApp has been initialised.
            TypeError: For bad input (nothing is written).
            pydantic.ValidationError: For input that fails validation (nothing is written).
            Exception: Whatever the workflow raised; the instance is then ``failed``.
        """
        app = await self._app_for("start", args)
        return await app.start_workflow(self, **kwargs)

    async def start_detached(self, *args: Any, **kwargs: Any) -> str:
        """Start a new instance and return its id once it is stored, leaving it to run
        in the background (``start()`` waits until it completes or first waits).
        Takes the same keywords as ``start()``, ``instance_id=`` included.

        Raises:
            WorkflowNotInitializedError: If there is no app to run it.
            TypeError: For bad input (nothing is written).
            pydantic.ValidationError: For input that fails validation (nothing is written).
        """
        app = await self._app_for("start_detached", args)
        return await app.start_instance(self, **kwargs)

    async def _app_for(self, method: str, args: tuple[Any, ...]) -> EddaApp:
        """The app that ``method`` starts the instance on (see `ready_app`).

        Raises:
            TypeError: If ``args`` holds positional arguments; the message shows the
                call with keywords.
            WorkflowNotInitializedError: If there is no app to run it.
        """
        if args:
            names = list(self._params)
            shown = ", ".join(f"{name}={value!r}"
                              for name, value in zip(names, args, strict=False))
            raise TypeError(f"{self.name}.{method}() takes keyword arguments only, got "
                            f"{len(args)} positional; call it as "
                            f"{self.name}.{method}({shown or '...'})")
        app = await ready_app()
        if app is None:
            raise WorkflowNotInitializedError(
                "Replay engine not initialized. Ensure EddaApp is properly initialized "
                "before starting workflows (await app.initialize() or 'async with app:')."
            )
        return app

    async def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Call the plain function (no journal); for tests."""
        return await self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Workflow {self.name}>"


@overload
def workflow(func: Callable[Concatenate[WorkflowContext, P], Awaitable[R]], /) -> Workflow[P, R]: ...


@overload
def workflow(
    func: None = None, /, *, event_handler: bool = False, lock_timeout_seconds: int | None = None
) -> Callable[[Callable[..., Awaitable[Any]]], Workflow[..., Any]]: ...


def workflow(
    func: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    event_handler: bool = False,
    lock_timeout_seconds: int | None = None,
) -> Workflow[..., Any] | Callable[[Callable[..., Awaitable[Any]]], Workflow[..., Any]]:
    """Register an async function as a workflow: ``@workflow`` or ``@workflow(...)``.

    Raises:
        TypeError: If the function is not ``async def`` or takes no context parameter.
    """
    if func is None:
        return lambda f: Workflow(f, event_handler=event_handler,
                                  lock_timeout_seconds=lock_timeout_seconds)
    return Workflow(func, event_handler=event_handler, lock_timeout_seconds=lock_timeout_seconds)



@functools.lru_cache(maxsize=256)
def _input_schema(wf: Workflow[..., Any]) -> dict[str, Any]:
    # Fields are named p0, p1... and aliased to the parameters, so that any parameter
    # name (one with a leading underscore, one shadowing a BaseModel attribute) fits.
    hints = type_hints(wf.func)
    fields: dict[str, Any] = {}
    for index, (name, param) in enumerate(wf._params.items()):
        annotation = hints.get(name, Any)
        if not _describable(annotation):
            annotation = Any
        info = pydantic.Field(alias=name, title=name)
        default: Any = ...
        if param.default is not inspect.Parameter.empty:
            try:
                default = to_jsonable(param.default, what=f"default of {name!r}")
            except TypeError:
                default = pydantic.Field(default_factory=lambda: None)
        fields[f"p{index}"] = (Annotated[annotation, info], default)
    extra: Literal["allow", "forbid"] = "allow" if wf._var_keyword else "forbid"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model: type[pydantic.BaseModel] = pydantic.create_model(
                wf.name, __config__=pydantic.ConfigDict(extra=extra), **fields)
            return model.model_json_schema(by_alias=True)
    except Exception:
        return {"title": wf.name, "type": "object", "additionalProperties": True}


def _describable(annotation: Any) -> bool:
    """Whether pydantic can give ``annotation`` a JSON schema."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydantic.TypeAdapter(annotation).json_schema()
    except Exception:
        return False
    return True


def _located(argument: str, problem: Any) -> Any:
    """A pydantic error detail, placed under ``argument``."""
    detail = {"type": problem["type"], "loc": (argument, *problem["loc"]),
              "input": problem["input"]}
    if "ctx" in problem:
        detail["ctx"] = problem["ctx"]
    return detail
