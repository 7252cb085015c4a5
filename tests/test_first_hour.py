"""A newcomer's mistakes get errors that say what is wrong and what to do, at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edda import EddaApp, ServiceStartError, WorkflowContext, activity, workflow
from edda.runtime import registry

pytestmark = pytest.mark.anyio


def test_a_workflow_or_activity_without_its_context_is_refused_when_decorated() -> None:
    with pytest.raises(TypeError, match=r"first parameter 'order_id' is annotated str.*"
                                        r"async def charge\(ctx: WorkflowContext, \.\.\.\)"):
        @activity
        async def charge(order_id: str) -> None: ...

    with pytest.raises(TypeError, match="must take the WorkflowContext as its first positional"):
        @activity
        def tick() -> None: ...

    with pytest.raises(TypeError, match="first parameter 'n' is annotated int"):
        @workflow
        async def counts(n: int) -> int: return n

    with pytest.raises(TypeError, match="first positional parameter"):
        @workflow
        async def keywords(*, n: int) -> int: return n

    # Unannotated, or annotated as the context in any spelling, is fine.
    @activity
    def plain(ctx, n):  # type: ignore[no-untyped-def]
        return n

    @activity
    async def spelled(ctx: "WorkflowContext", n: int) -> int:  # noqa: UP037
        return n

    @activity
    async def anything(ctx: Any, n: int) -> int:
        return n

    assert [plain.name, spelled.name, anything.name] == ["plain", "spelled", "anything"]


def _define_twice() -> None:
    @workflow
    async def renamed_twice(ctx: WorkflowContext) -> int:
        return 1


def test_two_workflows_under_one_name_are_refused() -> None:
    @workflow
    async def renamed_twice(ctx: WorkflowContext) -> int:
        return 0

    try:
        with pytest.raises(ValueError, match=r"two workflows are named 'renamed_twice'.*rename"):
            _define_twice()
        # The same definition run again (a reload, a loop) replaces the earlier one.
        for _ in range(2):
            @workflow
            async def looped(ctx: WorkflowContext) -> int:
                return 0
        assert registry.DEFAULT.workflow("looped") is looped
    finally:
        registry.DEFAULT.remove_workflow("renamed_twice")
        registry.DEFAULT.remove_workflow("looped")


@workflow
async def ships(ctx: WorkflowContext, order_id: str, express: bool = False) -> str:
    return order_id


async def test_positional_arguments_to_start_say_keywords_only(sqlite_url: str) -> None:
    with pytest.raises(TypeError, match=r"ships.start\(\) takes keyword arguments only, got 2 "
                                        r"positional; call it as "
                                        r"ships.start\(order_id='o-1', express=True\)"):
        await ships.start("o-1", True)


async def test_a_database_error_names_the_url_without_its_password() -> None:
    app = EddaApp("first-hour", "postgresql://shop:s3cret@127.0.0.1:1/orders",
                  start_timeout=5)
    with pytest.raises(ServiceStartError) as raised:
        await app.initialize()
    message = str(raised.value)
    assert "postgresql://shop:***@127.0.0.1:1/orders" in message
    assert "s3cret" not in message


def test_every_install_hint_says_how_to_install_from_source() -> None:
    from edda._extras import install_hint

    hint = install_hint("nats")
    assert "/path/to/edda-actors[nats]" in hint and "git+" in hint and "README" in hint
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "pip install '/path/to/edda-actors[postgresql,nats]'" in readme
    assert "@ git+https://" in readme
    # No message in the package points at the package index form alone.
    root = Path(__file__).parent.parent
    for folder in ("edda", "runtime", "actors", "journal", "transports"):
        for source in (root / folder).rglob("*.py"):
            for line in source.read_text().splitlines():
                if "pip install 'edda-actors[" in line and "``" not in line:
                    raise AssertionError(f"{source}: {line.strip()}")
