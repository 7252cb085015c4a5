"""Record ``names_v0_1.json`` (run by hand from the repository root; the JSON is committed).

A run of `golden_names` cut before its last activity, with every library type
stored under the module path release 0.1 stored (``edda.runtime.errors:TerminalError``).
Today's code stores public names (``edda:TerminalError``), so the recording is
written back to the 0.1 names with `ALIASES` read backwards; tracebacks are left
as recorded, since a replay only shows them.

Usage: python -m tests.golden.record_names
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from edda import EddaApp
from edda.runtime.names import ALIASES
from tests.golden.names_workflows import golden_names

HERE = Path(__file__).parent
INPUT = {"sku": "abc"}
RELEASE_0_1 = {public: old for old, public in ALIASES.items()}


def _as_stored_by_0_1(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("result_type"):
        body["result_type"] = RELEASE_0_1.get(body["result_type"], body["result_type"])
    error = body.get("error")
    while error is not None:
        old = RELEASE_0_1.get(f"{error['module']}:{error['qualname']}")
        if old is not None:
            error["module"], error["qualname"] = old.split(":")
        error = error.get("cause")
    return body


async def record() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = EddaApp("golden", f"sqlite:///{tmp}/g.db")
        async with app:
            iid = await golden_names.start(**INPUT)
            rows = await app.stores.journal.raw_records(iid)
            result = (await app.get_instance(iid))["output_data"]["result"]  # type: ignore[index]
    journal = [{"seq": r["seq"], "kind": r["kind"],
                "body": _as_stored_by_0_1(json.loads(r["body"]))} for r in rows[:-2]]
    return {"workflow_name": "golden_names", "input": INPUT, "journal": journal,
            "expected_result": result}


if __name__ == "__main__":
    golden = asyncio.run(record())
    (HERE / "names_v0_1.json").write_text(json.dumps(golden, indent=1) + "\n")
