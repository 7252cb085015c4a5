# ruff: noqa
# Edda's README, "Sync activities" block, unchanged; then main().
import asyncio

from edda import EddaApp, workflow

from edda import activity, WorkflowContext

@activity
def process_payment(ctx: WorkflowContext, amount: float) -> dict:
    # Sync function - automatically executed in thread pool
    # No async/await needed!
    return {"status": "paid", "amount": amount}

@workflow
async def payment_workflow(ctx: WorkflowContext, order_id: str) -> dict:
    # Workflows still use async (for deterministic replay)
    result = await process_payment(ctx, 99.99)
    return result


# -- main() ----------------------------------------------------------------------------
async def main() -> None:
    async with EddaApp(db_url="sqlite:///workflow.db") as app:
        iid = await payment_workflow.start(order_id="o-1")
        print("RESULT", await app.wait_result(iid))


asyncio.run(main())
