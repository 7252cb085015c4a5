# ruff: noqa
# Edda's README, "Pydantic integration" block, unchanged; then main().
import asyncio

import pydantic

from edda import EddaApp

from pydantic import BaseModel, Field
from edda import workflow, WorkflowContext

class OrderItem(BaseModel):
    item_id: str
    quantity: int = Field(..., ge=1)
    price: float = Field(..., gt=0)

@workflow
async def process_order(ctx: WorkflowContext, items: list[OrderItem]) -> dict:
    # Automatic validation before workflow starts
    total = sum(item.price * item.quantity for item in items)
    return {"total": total, "item_count": len(items)}


# -- main() ----------------------------------------------------------------------------
async def main() -> None:
    app = EddaApp(db_url="sqlite:///workflow.db")
    await app.initialize()
    iid = await process_order.start(items=[{"item_id": "a", "quantity": 2, "price": 1.5},
                                           OrderItem(item_id="b", quantity=1, price=4.0)])
    print("RESULT", await app.wait_result(iid))
    try:
        await process_order.start(items=[{"item_id": "c", "quantity": 0, "price": 1.0}])
    except pydantic.ValidationError as exc:
        print("REFUSED", exc.errors()[0]["loc"])
    await app.shutdown()


asyncio.run(main())
