"""Text the ``edda`` command prints: the instance table and the journal timeline.

Times are shown in UTC, so that what one person pastes reads the same to another.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from edda.runtime.timeline import format_duration, short

_COLUMNS = (("INSTANCE", "instance_id"), ("WORKFLOW", "workflow_name"), ("STATUS", "status"),
            ("STARTED (UTC)", "started_at"), ("UPDATED (UTC)", "updated_at"))
#: Steps whose time is the one at which they began (a wait is journaled when it starts).
_WAIT_KINDS = frozenset({"timer", "event", "message", "wait"})
_INDENT = " " * 6
#: Where Python joins the tracebacks of chained exceptions.
_CHAIN = re.compile(r"\n(?=The above exception was the direct cause of the following exception:"
                    r"|During handling of the above exception, another exception occurred:)")


def when(iso: str | None, *, date: bool = True) -> str:
    """An ISO time as ``2024-05-01 10:00:03`` in UTC (or ``10:00:03.120``)."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso).astimezone(UTC)
    if date:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%H:%M:%S.%f")[:-3]


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def instance_table(instances: list[dict[str, Any]]) -> str:
    """The instances as an aligned table with a header line."""
    rows = [[head for head, _ in _COLUMNS]]
    rows += [[when(inst.get(key)) if key.endswith("_at") else str(inst.get(key) or "")
              for _, key in _COLUMNS] for inst in instances]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def instance_header(inst: dict[str, Any]) -> str:
    """The head of ``edda show``: what the instance is and how it stands."""
    lines = [("instance", inst["instance_id"]), ("workflow", inst["workflow_name"]),
             ("status", inst["status"]), ("started", f"{when(inst['started_at'])} UTC"),
             ("updated", f"{when(inst['updated_at'])} UTC"),
             ("input", short(inst.get("input_data"), 200))]
    output = inst.get("output_data")
    if inst.get("continued_from"):
        lines.append(("continues", inst["continued_from"]))
    if isinstance(output, dict) and "error_type" in output:
        lines.append(("error", f"{output['error_type']}: {output.get('error_message', '')}"))
    elif isinstance(output, dict) and inst["status"] == "completed":
        lines.append(("result", short(output.get("result"), 200)))
    elif output is not None:
        lines.append(("output", short(output, 200)))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)


def timeline_text(steps: list[dict[str, Any]], now: datetime) -> str:
    """The steps, one line each, with their retries and errors (and tracebacks)
    indented under them."""
    head = ("  SEQ", "TIME (UTC)  ", "KIND        ", "STATUS      ", "DURATION", "STEP")
    lines = ["  ".join(head)]
    shown: dict[str, int] = {}
    for step in steps:
        lines.append("  ".join((
            str(step["seq"]).rjust(5),
            when(_time_of(step), date=False).ljust(12),
            str(step["kind"]).ljust(12),
            str(step["status"]).ljust(12),
            _duration(step, now).rjust(8),
            str(step["summary"]),
        )))
        lines.extend(_INDENT + line for line in _under(step, shown))
    return "\n".join(lines)


def _time_of(step: dict[str, Any]) -> str | None:
    if step["kind"] in _WAIT_KINDS and step.get("started_at"):
        return str(step["started_at"])
    return str(step["at"]) if step.get("at") else None


def _duration(step: dict[str, Any], now: datetime) -> str:
    if step["status"] == "waiting" and step.get("started_at"):
        waited = (now - datetime.fromisoformat(step["started_at"])).total_seconds() * 1000
        return f"{format_duration(max(0.0, waited))}+"
    return format_duration(step.get("duration_ms"))


def _under(step: dict[str, Any], shown: dict[str, int]) -> list[str]:
    """The lines shown beneath a step; ``shown`` maps the parts of tracebacks printed
    so far to their steps, so a failure's cause is not printed twice."""
    lines = [f"attempt {r['attempt']} failed: {r['error_type']}: {r['message']}"
             for r in step.get("retries", [])]
    detail = step.get("detail") or {}
    superseded = detail.get("superseded_by")
    if superseded is not None:
        lines.append(f"(no longer counts: retried at seq {superseded})")
    error = detail.get("error")
    if isinstance(error, dict) and not (step["kind"] == "compensation"
                                        and step["status"] == "started"):
        trace = str(error.get("traceback") or "").rstrip()
        for part in _CHAIN.split(trace) if trace else []:
            if part.strip() in shown:
                lines.append(f"(the traceback of step {shown[part.strip()]}, shown above)")
                continue
            shown[part.strip()] = step["seq"]
            lines.extend(part.split("\n"))
    return lines
