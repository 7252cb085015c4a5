# ruff: noqa
# Edda's README, "Observability hooks" block, unchanged; a workflow and main() to
# exercise it.
import asyncio

from edda import WorkflowContext, activity, workflow

from edda import EddaApp

class MyHooks:
    async def on_workflow_start(self, instance_id, workflow_name, input_data):
        print(f"Workflow {workflow_name} started: {instance_id}")

    async def on_workflow_complete(self, instance_id, workflow_name, result):
        print(f"Workflow {workflow_name} completed")

    async def on_activity_complete(self, instance_id, activity_id, activity_name, result, cache_hit):
        print(f"Activity {activity_name} completed (cache_hit={cache_hit})")

app = EddaApp(
    db_url="sqlite:///workflow.db",
    service_name="my-service",
    hooks=MyHooks()
)


# -- a workflow and main() -------------------------------------------------------------
@activity
async def greet(ctx: WorkflowContext, name: str) -> str:
    return f"hello {name}"


@workflow
async def greeting(ctx: WorkflowContext, name: str) -> str:
    return await greet(ctx, name)


async def main() -> None:
    await app.initialize()
    iid = await greeting.start(name="edda", instance_id="greeting-1")
    print("RESULT", await app.wait_result(iid))
    await app.shutdown()


asyncio.run(main())
