# ruff: noqa
# Edda's README, "Compensation (Saga pattern)" block, unchanged; then what it leaves
# to the reader (charge_payment) and main().
import asyncio

from edda import EddaApp, TerminalError

from edda import activity, on_failure, compensation, workflow, WorkflowContext

@compensation
async def cancel_reservation(ctx: WorkflowContext, item_id: str):
    # Automatically called on workflow failure (reverse order)
    print(f"Cancelled reservation for {item_id}")
    return {"cancelled": True}

@activity
@on_failure(cancel_reservation)
async def reserve_inventory(ctx: WorkflowContext, item_id: str):
    print(f"Reserved {item_id}")
    return {"reserved": True}

@workflow
async def order_workflow(ctx: WorkflowContext, item1: str, item2: str):
    await reserve_inventory(ctx, item1)  # Step 1: Reserve item1
    await reserve_inventory(ctx, item2)  # Step 2: Reserve item2
    await charge_payment(ctx)            # Step 3: If this fails...
    # Compensation runs: cancel item2 → cancel item1 (reverse order)


# -- left to the reader ----------------------------------------------------------------
@activity
async def charge_payment(ctx: WorkflowContext):
    raise TerminalError("card declined")


async def main() -> None:
    app = EddaApp(db_url="sqlite:///workflow.db")
    await app.initialize()
    try:
        await order_workflow.start(item1="book", item2="lamp", instance_id="order-1")
    except TerminalError as exc:
        print("FAILED", exc)
    print("STATUS", (await app.get_instance("order-1"))["status"])
    await app.shutdown()


asyncio.run(main())
