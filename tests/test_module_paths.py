"""Edda's module paths import and give the same objects as ``edda``, so code that
imports from them (Edda's own examples import from edda.context) runs unchanged."""

from __future__ import annotations

import enum
import importlib
import subprocess
import sys

import pydantic
import pytest

import edda

ALIASES = {
    "edda.app": ["EddaApp"],
    "edda.context": ["WorkflowContext"],
    "edda.hooks": ["WorkflowHooks", "HooksBase"],
    "edda.channels": ["ChannelMessage", "ChannelModeConflictError", "subscribe", "unsubscribe",
                      "receive", "publish", "send_to", "wait_event", "ReceivedEvent",
                      "EventTimeoutError", "sleep", "sleep_until"],
    "edda.activity": ["activity", "Activity"],
    "edda.workflow": ["workflow", "Workflow"],
    "edda.compensation": ["compensation", "on_failure", "register_compensation"],
    "edda.retry": ["RetryPolicy", "RetryExhaustedError", "TerminalError"],
    "edda.exceptions": ["TerminalError", "RetryExhaustedError", "WorkflowCancelledException"],
}


@pytest.mark.parametrize("module_name", sorted(ALIASES))
def test_each_module_path_gives_the_objects_of_edda(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in ALIASES[module_name]:
        assert hasattr(module, name), f"{module_name} has no {name}"
        if hasattr(edda, name):
            assert getattr(module, name) is getattr(edda, name), f"{module_name}.{name}"
    assert set(ALIASES[module_name]) <= set(module.__all__)


def test_importing_a_module_path_keeps_the_decorator_of_the_same_name() -> None:
    # A fresh interpreter: loading edda.workflow first must not replace edda.workflow.
    code = ("import edda.workflow, edda.activity, edda.compensation\n"
            "import edda\n"
            "from edda import workflow, activity, compensation\n"
            "assert callable(workflow) and not isinstance(workflow, type(edda)), workflow\n"
            "print(type(edda.workflow).__name__, type(edda.activity).__name__, "
            "type(edda.compensation).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["function", "function", "function"]


class Color(enum.Enum):
    RED = "red"


class Order(pydantic.BaseModel):
    order_id: str
    color: Color


def test_pydantic_utils_behave_as_edda_documents() -> None:
    from edda import pydantic_utils as pu

    order = Order(order_id="o-1", color=Color.RED)
    assert pu.is_pydantic_model(Order) and not pu.is_pydantic_model(order)
    assert pu.is_pydantic_instance(order) and not pu.is_pydantic_instance(Order)
    assert pu.is_enum_class(Color) and pu.is_enum_instance(Color.RED)
    assert pu.to_json_dict(order) == {"order_id": "o-1", "color": "red"}
    assert pu.to_json_dict(Color.RED) == "red" and pu.to_json_dict(3) == 3
    assert pu.from_json_dict({"order_id": "o-2", "color": "red"}, Order) == Order(
        order_id="o-2", color=Color.RED)
    assert pu.extract_pydantic_model_from_annotation(Order | None) is Order
    assert pu.extract_pydantic_model_from_annotation(int) is None
    assert pu.extract_enum_from_annotation(Color | None) is Color
    assert pu.enum_value_to_enum("red", Color) is Color.RED
    with pytest.raises(ValueError):
        pu.enum_value_to_enum("blue", Color)


@pytest.mark.anyio
async def test_app_storage_answers_edda_s_queries_and_names_the_rest(
    sqlite_url: str, make_app: object
) -> None:
    from edda import WorkflowContext, activity, workflow

    @activity
    async def stored_step(ctx: WorkflowContext, n: int) -> int:
        return n

    @workflow
    async def stored_flow(ctx: WorkflowContext, n: int) -> int:
        return await stored_step(ctx, n)

    app = make_app(sqlite_url)  # type: ignore[operator]
    await app.initialize()
    iid = await stored_flow.start(n=7)
    instance = await app.storage.get_instance(iid)
    assert instance["status"] == "completed" and instance["output_data"] == {"result": 7}
    history = await app.storage.get_history(iid)
    assert [h["event_type"] for h in history][:2] == ["WorkflowStarted", "ActivityCompleted"]
    page = await app.storage.list_instances(workflow_name_filter="stored_flow", limit=10)
    assert [i["instance_id"] for i in page["instances"]] == [iid] and not page["has_more"]
    with pytest.raises(AttributeError, match=r"app.storage.create_instance does not exist.*"
                                             r"app.get_instance"):
        await app.storage.create_instance("x")
