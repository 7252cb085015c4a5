"""Record the golden journals (run by hand; the JSON files are committed).

``order_v1.json`` is a run of `golden_order` cut before its last activity, so a
replay must serve every earlier call from the journal and run only the rest.
``order_v1_nondeterministic.json`` is the same journal with two recorded calls
swapped: the code asks for ``classify`` where the journal has ``quote``.

Usage: python tests/golden/record.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from edda import EddaApp
from tests.golden.workflows import golden_order


async def record() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = EddaApp("golden", f"sqlite:///{tmp}/g.db")
        async with app:
            iid = await golden_order.start(skus=["abc", "de", "fghij"])
            rows = await app.stores.journal.raw_records(iid)
            result = (await app.get_instance(iid))["output_data"]["result"]  # type: ignore[index]
    journal = [{"seq": r["seq"], "kind": r["kind"], "body": json.loads(r["body"])}
               for r in rows[:-2]]
    golden = {"workflow_name": "golden_order", "input": {"skus": ["abc", "de", "fghij"]},
              "journal": journal, "expected_result": result}
    (HERE / "order_v1.json").write_text(json.dumps(golden, indent=1) + "\n")
    twin = json.loads(json.dumps(golden))
    calls = [e["body"] for e in twin["journal"] if "call" in e["body"]]
    first, fourth = next(b for b in calls if b["call"] == 0), next(b for b in calls if b["call"] == 3)
    first["call"], fourth["call"] = 3, 0
    twin.pop("expected_result")
    twin["expected_error"] = "NonDeterminismError"
    (HERE / "order_v1_nondeterministic.json").write_text(json.dumps(twin, indent=1) + "\n")


if __name__ == "__main__":
    asyncio.run(record())
