"""The workflow the golden journals were recorded from. Never change its durable calls.

``record.py`` writes the journals; the golden tests replay them with this code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import Enum

from pydantic import BaseModel

from edda import TerminalError, WorkflowContext, activity, workflow

RUNS: Counter[str] = Counter()


class Tier(Enum):
    GOLD = "gold"
    SILVER = "silver"


class Quote(BaseModel):
    sku: str
    price: float


class Unavailable(TerminalError):
    pass


@activity
async def quote(ctx: WorkflowContext, sku: str) -> Quote:
    RUNS[f"quote:{sku}"] += 1
    return Quote(sku=sku, price=float(len(sku)))


@activity
async def classify(ctx: WorkflowContext, total: float) -> Tier:
    RUNS["classify"] += 1
    return Tier.GOLD if total > 5 else Tier.SILVER


@activity
async def hold_stock(ctx: WorkflowContext, sku: str) -> None:
    RUNS["hold_stock"] += 1
    raise Unavailable(f"{sku} is gone")


@activity
def confirm(ctx: WorkflowContext, tier: str, *, note: str) -> str:
    RUNS["confirm"] += 1
    return f"{tier}:{note}"


@workflow
async def golden_order(ctx: WorkflowContext, skus: list[str]) -> dict[str, object]:
    quotes = await asyncio.gather(*(quote(ctx, s) for s in skus))
    tier = await classify(ctx, sum(q.price for q in quotes))
    try:
        await hold_stock(ctx, skus[0])
        held = True
    except Unavailable:
        held = False
    receipt = await confirm(ctx, tier.value, note="thanks")
    return {"tier": tier.value, "held": held, "receipt": receipt,
            "quotes": [q.model_dump() for q in quotes]}
