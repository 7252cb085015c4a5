# ruff: noqa
# Edda's README, "Events" blocks, unchanged (the wait_event and timeout fragments are
# placed in workflows); then main().
import asyncio

from edda import EddaApp, activity

from edda import workflow, wait_event, send_event, WorkflowContext

@workflow
async def payment_workflow(ctx: WorkflowContext, order_id: str):
    # Send payment request event
    await send_event("payment.requested", "payment-service", {"order_id": order_id})

    # Wait for payment completion event (process-releasing)
    payment_event = await wait_event(ctx, "payment.completed")

    return payment_event.data


@workflow
async def reads_the_event(ctx: WorkflowContext) -> dict:
    event = await wait_event(ctx, "payment.completed")
    amount = event.data["amount"]           # Event payload (dict or bytes)
    source = event.metadata.source          # CloudEvents source
    event_type = event.metadata.type        # CloudEvents type
    extensions = event.extensions           # CloudEvents extensions
    return {"amount": amount, "source": source, "type": event_type}


@workflow
async def times_out(ctx: WorkflowContext, order_id: str) -> str:
    from edda import wait_event, EventTimeoutError

    try:
        event = await wait_event(ctx, "payment.completed", timeout_seconds=1)
    except EventTimeoutError:
        # Handle timeout (e.g., cancel order, send reminder)
        await cancel_order(ctx, order_id)
        return "timed out"
    return "paid"


# -- left to the reader ----------------------------------------------------------------
@activity
async def cancel_order(ctx: WorkflowContext, order_id: str) -> None:
    print("cancelled", order_id)


async def main() -> None:
    app = EddaApp(db_url="sqlite:///workflow.db")
    await app.initialize()
    paying = await payment_workflow.start(order_id="o-1")
    reading = await reads_the_event.start()
    await send_event("payment.completed", "payment-service", {"amount": 42})
    print("PAID", await app.wait_result(paying, timeout=10))
    print("READ", await app.wait_result(reading, timeout=10))
    late = await times_out.start(order_id="o-2")
    print("LATE", await app.wait_result(late, timeout=20))
    await app.shutdown()


asyncio.run(main())
