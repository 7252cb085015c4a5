"""The seed's LlamaIndex Quick Start, as written, then a fresh node that finishes it.

Run it as ``python llamaindex_quickstart.py`` in an empty directory: the Quick
Start uses ``sqlite:///app.db``. Its ``main()`` starts the order and shuts the
app down at once; whatever it left unfinished, the second node below completes
from the journal. The last line printed is a JSON summary for the test.
"""
# ruff: noqa: I001  (the seed's imports are kept exactly as written)

from llama_index.core.workflow import Workflow, step, StartEvent, StopEvent, Event
from edda import EddaApp, workflow, WorkflowContext
from edda.integrations.llamaindex import DurableWorkflowRunner

# Define events
class OrderReceivedEvent(Event):
    order_id: str
    amount: float

class ProcessingCompleteEvent(Event):
    order_id: str
    status: str

# Define LlamaIndex Workflow
class OrderWorkflow(Workflow):
    @step
    async def receive_order(self, ctx, ev: StartEvent) -> OrderReceivedEvent:
        print(f"Received order: {ev.order_id}")
        return OrderReceivedEvent(order_id=ev.order_id, amount=ev.amount)

    @step
    async def process_order(self, ctx, ev: OrderReceivedEvent) -> ProcessingCompleteEvent:
        print(f"Processing order {ev.order_id}...")
        return ProcessingCompleteEvent(order_id=ev.order_id, status="processed")

    @step
    async def complete_order(self, ctx, ev: ProcessingCompleteEvent) -> StopEvent:
        return StopEvent(result={
            "order_id": ev.order_id,
            "status": ev.status,
            "message": "Order completed successfully",
        })

# Create durable runner
runner = DurableWorkflowRunner(OrderWorkflow)

# Wrap in Edda workflow
@workflow
async def order_workflow(ctx: WorkflowContext, order_id: str, amount: float) -> dict:
    result = await runner.run(ctx, order_id=order_id, amount=amount)
    return result

# Run the workflow
async def main():
    app = EddaApp(service_name="order-service", db_url="sqlite:///app.db")
    await app.initialize()

    instance_id = await order_workflow.start(order_id="ORD-001", amount=99.99)
    print(f"Started workflow: {instance_id}")

    await app.shutdown()


# ---- not part of the seed: a fresh node finishes the order and reports ----

async def finish() -> None:
    import asyncio
    import json

    async with EddaApp(service_name="order-service", db_url="sqlite:///app.db") as app:
        found = await app.find_instances(workflow_name="order_workflow")
        (instance,) = found["instances"]
        for _ in range(3000):
            instance = await app.get_instance(instance["instance_id"])
            if instance["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.01)
        history = await app.get_history(instance["instance_id"])
        print(json.dumps({"status": instance["status"], "output": instance["output_data"],
                          "steps": [h["activity_id"] for h in history
                                    if h["event_type"] == "ActivityCompleted"]}))


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
    asyncio.run(finish())
