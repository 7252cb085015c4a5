"""The journal names library classes by their public path, and reads the paths of old releases.

`edda.runtime.names.ALIASES` must turn every name an earlier release stored into
the same class without importing the module that name points at, so moving a
module never changes what an old journal means. The golden journal
``tests/golden/names_v0_1.json`` shows the same for a whole replay.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from datetime import UTC, datetime
from typing import Any

import pytest

import edda
import edda.integrations.llamaindex as llamaindex
from edda import ChannelMessage, ReceivedEvent, TerminalError
from edda.journal.entries import ErrorInfo
from edda.runtime.names import ALIASES, resolve, stable_name
from edda.runtime.serialization import error_info, rebuild_error, restore, to_jsonable, type_path


class OrderRejected(TerminalError):
    pass


def _at(path: str) -> Any:
    module, _, qualname = path.partition(":")
    return getattr(importlib.import_module(module), qualname)


def test_every_alias_resolves_without_importing_its_old_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Today the old paths still exist: they say which class each alias must give.
    expected = {old: _at(old) for old in ALIASES}
    old_modules = {old.partition(":")[0] for old in ALIASES}
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> types.ModuleType:
        if name in old_modules:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)
    for old, public in ALIASES.items():
        assert resolve(old) is expected[old], old
        assert stable_name(expected[old]) == public


@pytest.mark.parametrize("package", [edda, llamaindex], ids=lambda p: p.__name__)
def test_public_classes_are_stored_under_their_package(package: types.ModuleType) -> None:
    classes = {name: getattr(package, name) for name in package.__all__
               if isinstance(getattr(package, name), type)}
    assert classes
    for name, cls in classes.items():
        assert stable_name(cls) == f"{package.__name__}:{name}"
        assert resolve(f"{package.__name__}:{name}") is cls
        if not dataclasses.is_dataclass(cls):  # pydantic reads a dataclass's own module
            assert cls.__module__ == package.__name__


def test_errors_are_stored_by_public_name_and_raised_again_as_their_type() -> None:
    library = error_info(edda.RetryExhaustedError("gave up"))
    assert (library.module, library.qualname) == ("edda", "RetryExhaustedError")
    assert type(rebuild_error(library)) is edda.RetryExhaustedError
    user = error_info(OrderRejected("no stock"))
    assert (user.module, user.qualname) == (__name__, "OrderRejected")
    assert type(rebuild_error(user)) is OrderRejected


def test_unknown_names_are_not_guessed() -> None:
    assert resolve("edda:NoSuchThing") is None
    assert resolve("no_such_module_anywhere:Thing") is None
    rebuilt = rebuild_error(ErrorInfo(module="no_such_module_anywhere", qualname="OrderRejected",
                                      message="no stock"))
    assert type(rebuilt) is Exception
    assert str(rebuilt) == "OrderRejected: no stock"


@pytest.mark.parametrize("value", [
    ReceivedEvent(data={"sku": "abc"}, type="stock.counted", source="warehouse", id="1"),
    ChannelMessage(id="m1", channel="orders", data=b"\x00raw",
                   published_at=datetime(2024, 5, 1, tzinfo=UTC)),
], ids=lambda v: type(v).__name__)
def test_library_results_come_back_as_their_type(value: Any) -> None:
    stored = type_path(value)
    assert stored == f"edda:{type(value).__name__}"
    assert restore(to_jsonable(value, what="result"), resolve(stored)) == value
