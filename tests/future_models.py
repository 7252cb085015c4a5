"""A user module written with ``from __future__ import annotations``."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel

from edda import WorkflowContext, activity, workflow
from tests.support.gates import Gate

GATES: dict[str, Gate] = {}


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    sku: str
    qty: int


@activity
async def price_items(ctx: WorkflowContext, items: list[Item]) -> list[Item]:
    return [Item(sku=i.sku, qty=i.qty * 2) for i in items]


@activity
async def paint(ctx: WorkflowContext, color: Color) -> Color:
    return Color.BLUE if color is Color.RED else Color.RED


@activity
async def hold(ctx: WorkflowContext, key: str) -> None:
    gate = GATES.get(key)
    if gate is not None:
        await gate.hold()


@workflow
async def future_typed_wf(ctx: WorkflowContext, items: list[Item], color: Color) -> dict[str, object]:
    assert all(isinstance(i, Item) for i in items)
    assert isinstance(color, Color)
    doubled = await price_items(ctx, items)
    painted = await paint(ctx, color)
    await hold(ctx, "typed")
    return {
        "types": [type(d).__name__ for d in doubled] + [type(painted).__name__],
        "qty": [d.qty for d in doubled],
        "color": painted.value,
    }
