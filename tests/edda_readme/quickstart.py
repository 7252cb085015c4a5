# ruff: noqa
# Edda's README, "Quick Start" block, unchanged; then main().
import asyncio

from edda import EddaApp, workflow, activity, WorkflowContext

@activity
async def process_payment(ctx: WorkflowContext, amount: float):
    # Durable execution - automatically recorded in history
    print(f"Processing payment: ${amount}")
    return {"status": "paid", "amount": amount}

@workflow
async def order_workflow(ctx: WorkflowContext, order_id: str, amount: float):
    # Workflow orchestrates activities with automatic retry on crash
    result = await process_payment(ctx, amount)
    return {"order_id": order_id, **result}

# Simplified example - production code needs:
# 1. await app.initialize() before starting workflows
# 2. try-finally with await app.shutdown() for cleanup
# 3. PostgreSQL or MySQL for multi-process/multi-pod deployments
app = EddaApp(db_url="sqlite:///workflow.db")


# -- main(): the README's top-level await, in a function ---------------------------
async def main() -> None:
    # Start workflow
    instance_id = await order_workflow.start(order_id="ORD-123", amount=99.99)

    print("RESULT", await app.wait_result(instance_id))
    await app.shutdown()


asyncio.run(main())
