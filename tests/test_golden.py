"""Golden journals must keep decoding and replaying across releases.

A changed entry format or replay rule that breaks old journals fails here. The
non-deterministic twin must raise `NonDeterminismError`, never replay silently.
"""

from __future__ import annotations

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
from tests.golden import workflows
from tests.support.gates import finished

pytestmark = pytest.mark.anyio
GOLDEN = Path(__file__).parent / "golden"
MakeApp = Callable[..., EddaApp]


async def _load(db_url: str, name: str) -> tuple[str, dict[str, Any]]:
    golden = json.loads((GOLDEN / name).read_text())
    instance_id = f"golden_order-{name.split('.')[0].replace('_', '')}"
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
