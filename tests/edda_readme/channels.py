# ruff: noqa
# Edda's README, "Channels" block, unchanged (its two sends at the end are made from a
# workflow, where a ctx exists); then what it leaves to the reader and main().
import asyncio

from edda import EddaApp, activity

from edda import workflow, subscribe, receive, publish, send_to, WorkflowContext

# Job Worker - processes jobs exclusively (competing mode)
@workflow
async def job_worker(ctx: WorkflowContext, worker_id: str):
    # Subscribe with competing mode - each job goes to ONE worker only
    await subscribe(ctx, channel="jobs", mode="competing")

    while True:
        job = await receive(ctx, channel="jobs")  # Get next job
        await process_job(ctx, job.data)
        await ctx.recur(worker_id)  # Continue processing

# Notification Handler - receives ALL messages (broadcast mode)
@workflow
async def notification_handler(ctx: WorkflowContext, handler_id: str):
    # Subscribe with broadcast mode - ALL handlers receive each message
    await subscribe(ctx, channel="notifications", mode="broadcast")

    while True:
        msg = await receive(ctx, channel="notifications")
        await send_notification(ctx, msg.data)
        await ctx.recur(handler_id)


@workflow
async def dispatcher(ctx: WorkflowContext) -> str:
    # Publish to channel (all subscribers or one competing subscriber)
    await publish(ctx, channel="jobs", data={"task": "send_report"})

    # Direct message to specific workflow instance
    await send_to(ctx, instance_id="workflow-123", channel="approval", data={"approved": True})
    return "sent"


# -- left to the reader ----------------------------------------------------------------
DONE: list[str] = []


@activity
async def process_job(ctx: WorkflowContext, data: dict) -> None:
    DONE.append(f"job {data['task']}")


@activity
async def send_notification(ctx: WorkflowContext, data: dict) -> None:
    DONE.append(f"notified {data['text']}")


@workflow
async def approver(ctx: WorkflowContext) -> dict:
    await subscribe(ctx, channel="approval", mode="direct")
    return (await receive(ctx, channel="approval")).data


async def main() -> None:
    app = EddaApp(db_url="sqlite:///workflow.db")
    await app.initialize()
    await job_worker.start(worker_id="w1")
    await job_worker.start(worker_id="w2")
    await notification_handler.start(handler_id="h1")
    await notification_handler.start(handler_id="h2")
    await approver.start(instance_id="workflow-123")
    print("DISPATCHED", await app.wait_result(await dispatcher.start(), timeout=10))
    await app.publish("notifications", {"text": "deploy done"})
    print("APPROVED", await app.wait_result("workflow-123", timeout=10))
    for _ in range(500):
        if len(DONE) >= 3:
            break
        await asyncio.sleep(0.02)
    print("DONE", sorted(DONE))
    await app.shutdown()


asyncio.run(main())
