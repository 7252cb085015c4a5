"""Golden journals must keep decoding and replaying across releases.

A changed entry format or replay rule that breaks old journals fails here. The
non-deterministic twin must raise `NonDeterminismError`, never replay silently.
``names_v0_1.json`` stores errors and result types under the module paths of
release 0.1; it must replay to the same exception types even once those modules
have moved.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edda import EddaApp
from edda.journal import schema
from edda.journal.codec import decode_entry, encode_json
from edda.journal.database import Database
from edda.journal.migrations import migrate
from edda.runtime.names import ALIASES
from tests.golden import names_workflows, workflows
from tests.support.gates import finished

pytestmark = pytest.mark.anyio
GOLDEN = Path(__file__).parent / "golden"
MakeApp = Callable[..., EddaApp]


async def _load(db_url: str, name: str) -> tuple[str, dict[str, Any]]:
    golden = json.loads((GOLDEN / name).read_text())
    instance_id = f"{golden['workflow_name']}-{name.split('.')[0].replace('_', '')}"
    db = Database.open(db_url)
    try:
        await migrate(db)
        now = time.time()

        def insert(conn: sa.Connection) -> None:
            conn.execute(sa.insert(schema.instances).values(
                instance_id=instance_id, workflow_name=golden["workflow_name"],
                status="running", input=encode_json(golden["input"]), epoch=1,
                started_at=now, updated_at=now,
            ))
            conn.execute(sa.insert(schema.journal), [
                {"instance_id": instance_id, "seq": e["seq"], "kind": e["kind"],
                 "body": json.dumps(e["body"]), "created_at": now}
                for e in golden["journal"]
            ])

        await db.write(insert)
    finally:
        await db.dispose()
    return instance_id, golden


def test_golden_entries_decode() -> None:
    for path in GOLDEN.glob("*.json"):
        for row in json.loads(path.read_text())["journal"]:
            assert decode_entry(json.dumps(row["body"])).__struct_config__.tag == row["kind"]


async def test_golden_journal_replays(db_url: str, make_app: MakeApp) -> None:
    instance_id, golden = await _load(db_url, "order_v1.json")
    workflows.RUNS.clear()
    app = make_app(db_url)
    await app.initialize()
    inst = await finished(app, instance_id, timeout=5.0)
    assert inst["status"] == "completed", inst["output_data"]
    assert inst["output_data"]["result"] == golden["expected_result"]
    assert dict(workflows.RUNS) == {"confirm": 1}, "only the unrecorded activity may run"


async def test_golden_nondeterministic_twin_is_detected(db_url: str, make_app: MakeApp) -> None:
    instance_id, golden = await _load(db_url, "order_v1_nondeterministic.json")
    workflows.RUNS.clear()
    app = make_app(db_url)
    await app.initialize()
    inst = await finished(app, instance_id, timeout=5.0)
    assert inst["status"] == "failed"
    assert inst["output_data"]["error_type"] == golden["expected_error"]
    assert "quote:1" in inst["output_data"]["error_message"]
    assert not workflows.RUNS, "nothing may run against a journal from other code"


def _refuse_engine_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the engine modules unimportable by name, as if a release had moved them."""
    real = importlib.import_module

    def import_module(name: str, package: str | None = None) -> Any:
        if name.startswith(("edda.runtime", "edda.actors", "edda.journal", "edda.transports")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)


async def test_golden_names_replay_as_the_same_types(
    db_url: str, make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance_id, golden = await _load(db_url, "names_v0_1.json")
    names_workflows.RUNS.clear()
    _refuse_engine_imports(monkeypatch)
    app = make_app(db_url)
    await app.initialize()
    inst = await finished(app, instance_id, timeout=5.0)
    assert inst["status"] == "completed", inst["output_data"]
    assert inst["output_data"]["result"] == golden["expected_result"]
    assert dict(names_workflows.RUNS) == {"summarise": 1}, "only the unrecorded activity may run"


def _stored_names(body: dict[str, Any]) -> list[str]:
    names = [body["result_type"]] if body.get("result_type") else []
    error = body.get("error")
    while error is not None:
        names.append(f"{error['module']}:{error['qualname']}")
        error = error.get("cause")
    return names


async def test_new_journals_store_stable_names(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url)
    await app.initialize()
    instance_id = await names_workflows.golden_names.start(sku="abc")
    rows = await app.stores.journal.raw_records(instance_id)
    stored = {name for row in rows for name in _stored_names(json.loads(row["body"]))}
    assert {"edda:TerminalError", "edda:RetryExhaustedError", "edda:EventTimeoutError",
            "edda:NotSerializableError", "edda:ReceivedEvent"} <= stored
    assert not [name for name in stored if name.startswith("edda.")], stored
    legacy = {name for row in json.loads((GOLDEN / "names_v0_1.json").read_text())["journal"]
              for name in _stored_names(row["body"])}
    assert {ALIASES.get(name, name) for name in legacy} == stored
