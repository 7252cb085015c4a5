"""An instance's journal as a timeline of readable steps, for people and viewers.

`timeline` takes what `get_history` returns (Edda's history shape, one item per
journal entry) and gives one step per thing that happened: an activity with
its duration and retries, a wait paired with what ended it (the event
received, the timer fired, the timeout) and how long it waited, a message, a
compensation, the workflow's start and end. Every step is a JSON-able dict of
the same keys, so the command line and the web viewer render the same data:

``seq``, ``kind``, ``position``, ``name``, ``status``, ``at`` (when the step
was journaled: its end), ``started_at``, ``duration_ms``, ``attempts``,
``retries`` (the failed attempts: ``attempt``, ``error_type``, ``message``),
``summary`` (one human line) and ``detail`` (input, result, event data, and
``error`` with ``type``, ``message`` and ``traceback``).

It reads only the history items, never the database, so it works on a history
fetched over the JSON API as well.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

Step = dict[str, Any]

#: Step kinds, by the ``wait_type`` of a wait.
_WAIT_KINDS = {"timer": "timer", "event": "event", "channel": "message"}
_SHORT = 60


def timeline(history: list[dict[str, Any]]) -> list[Step]:
    """The steps of an instance, in journal order.

    Args:
        history: `EddaApp.get_history` of one instance.

    Returns:
        One dict per step (see the module's docstring); a wait and the entry that
        ended it are one step whose ``duration_ms`` is the time waited.
    """
    builder = _Builder()
    for item in history:
        builder.add(item)
    return builder.steps


def format_duration(ms: int | float | None) -> str:
    """``"3 ms"``, ``"1.2 s"``, ``"4 m 05 s"``, ``"2 h 10 m"``, ``"3 d 4 h"`` (or ``""``)."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{round(ms)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def short(value: Any, limit: int = _SHORT) -> str:
    """A value as compact JSON, cut to ``limit`` characters."""
    text = json.dumps(plain(value), ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(value: Any) -> Any:
    """``value`` with bytes as ``{"_base64": ...}`` and tuples as lists: JSON-able."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return {"_base64": base64.b64encode(bytes(value)).decode()}
    return value


def _call(name: str, given: dict[str, Any] | None) -> str:
    """``name(1, currency="SEK")`` from an activity's recorded input."""
    given = given or {}
    parts = [short(a, 30) for a in given.get("args", [])]
    parts += [f"{k}={short(v, 30)}" for k, v in (given.get("kwargs") or {}).items()]
    return f"{name}({', '.join(parts)})"


def _kwargs_call(name: str, kwargs: dict[str, Any] | None) -> str:
    return _call(name, {"kwargs": kwargs or {}})


def _ms_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(0, round(delta.total_seconds() * 1000))


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, int | float):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _readable(iso: str | None) -> str:
    """``2024-05-01 10:00:03 UTC`` for a summary."""
    if iso is None:
        return ""
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error(data: dict[str, Any]) -> dict[str, Any]:
    """The error of a failure item (``error_type`` ... or an ``error`` struct)."""
    nested = data.get("error")
    if isinstance(nested, dict):
        return {"type": nested.get("qualname", ""), "message": nested.get("message", ""),
                "traceback": nested.get("traceback", "")}
    return {"type": data.get("error_type", ""), "message": data.get("error_message", ""),
            "traceback": data.get("stack_trace", "")}


def _retries(data: dict[str, Any]) -> list[dict[str, Any]]:
    meta = data.get("retry_metadata") or {}
    return [{"attempt": e.get("attempt"), "error_type": e.get("error_type", ""),
             "message": e.get("message", "")} for e in meta.get("errors", [])]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Builder:
    """Walks the history once; keeps the open waits to pair with what ends them."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._open: dict[str, Step] = {}
        self._workflow = ""
        self._started_at: str | None = None
        self._handlers: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
            "WorkflowStarted": self._started,
            "WorkflowCompleted": self._completed,
            "WorkflowFailed": self._failed,
            "WorkflowRecurred": self._recurred,
            "ActivityCompleted": self._activity,
            "ActivityFailed": self._activity,
            "WaitStarted": self._wait,
            "TimerExpired": self._timer_fired,
            "EventReceived": self._event,
            "MessageTimeout": self._timed_out,
            "ChannelMessageReceived": self._message,
            "Subscribed": self._subscription,
            "Unsubscribed": self._subscription,
            "MessagePublished": self._published,
            "CompensationRegistered": self._compensation_registered,
            "CompensationsStarted": self._compensating,
            "CompensationExecuted": self._compensation_done,
            "CompensationFailed": self._compensation_done,
            "WorkflowCancelling": self._cancel,
            "WorkflowCancelled": self._cancel,
            "TransactionCommitted": self._transaction,
            "WorkflowRetried": self._retried,
            "workflow_retried": self._retried,
            "BodyEnded": self._body_ended,
        }

    def add(self, item: dict[str, Any]) -> None:
        data = item.get("event_data")
        data = data if isinstance(data, dict) else {"value": data}
        handler = self._handlers.get(str(item.get("event_type")), self._other)
        handler(item, data)

    def _step(self, item: dict[str, Any], kind: str, name: str, status: str, summary: str,
              detail: dict[str, Any], *, started_at: str | None = None,
              duration_ms: int | None = None, attempts: int | None = None,
              retries: list[dict[str, Any]] | None = None) -> Step:
        step: Step = {
            "seq": item.get("id"), "kind": kind, "position": item.get("activity_id", ""),
            "name": name, "status": status, "at": item.get("created_at"),
            "started_at": started_at, "duration_ms": duration_ms, "attempts": attempts,
            "retries": retries or [], "summary": summary, "detail": plain(detail),
        }
        self.steps.append(step)
        return step

    # -- the workflow -------------------------------------------------------------

    def _started(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        self._workflow = str(data.get("workflow_name", ""))
        self._started_at = item.get("created_at")
        summary = f"started {_kwargs_call(self._workflow, data.get('input'))}"
        if data.get("continued_from"):
            summary += f", continuing {data['continued_from']}"
        detail = {"input": data.get("input"), "continued_from": data.get("continued_from")}
        self._step(item, "workflow", self._workflow, "started", summary, detail)

    def _ended(self, item: dict[str, Any], kind: str, status: str, summary: str,
               detail: dict[str, Any]) -> None:
        self._close_waits(item, "cancelled" if kind == "cancel" else "abandoned")
        self._step(item, kind, self._workflow, status, summary, detail,
                   started_at=self._started_at,
                   duration_ms=_ms_between(self._started_at, item.get("created_at")))

    def _completed(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        result = data.get("result")
        self._ended(item, "workflow", "completed", f"completed -> {short(result)}",
                    {"result": result})

    def _failed(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        error = _error(data)
        self._ended(item, "workflow", "failed", f"failed: {error['type']}: {error['message']}",
                    {"error": error})

    def _recurred(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        new_id = data.get("new_instance_id", "")
        self._ended(item, "recur", "recurred",
                    f"continued as new instance {new_id} with "
                    f"{_kwargs_call('', data.get('input'))}",
                    {"new_instance_id": new_id, "input": data.get("input")})

    def _cancel(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        by, before = data.get("cancelled_by", ""), data.get("previous_status", "")
        detail = {"cancelled_by": by, "cancelled_at": _iso(data.get("cancelled_at")),
                  "previous_status": before}
        if item.get("event_type") == "WorkflowCancelling":
            self._close_waits(item, "cancelled")
            self._step(item, "cancel", self._workflow, "cancelling",
                       f"cancel requested by {by} while {before}; compensating", detail)
            return
        failed = data.get("failed_compensations") or []
        summary = f"cancelled by {by} (was {before})"
        if failed:
            summary += f"; compensations that failed: {', '.join(failed)}"
            detail["failed_compensations"] = failed
        self._ended(item, "cancel", "cancelled", summary, detail)

    # -- activities ---------------------------------------------------------------

    def _activity(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        name = str(data.get("activity_name", ""))
        attempts = data.get("attempts")
        call = _call(name, data.get("input"))
        detail: dict[str, Any] = {"input": data.get("input")}
        if item.get("event_type") == "ActivityCompleted":
            status = "completed"
            detail["result"] = data.get("result")
            summary = f"{call} -> {short(data.get('result'))}"
        else:
            status = "failed"
            error = detail["error"] = _error(data)
            summary = f"{call} failed: {error['type']}: {error['message']}"
        if isinstance(attempts, int) and attempts > 1:
            summary += f" ({attempts} attempts)"
        self._step(item, "activity", name, status, summary, detail,
                   started_at=data.get("started_at"), duration_ms=data.get("duration_ms"),
                   attempts=attempts, retries=_retries(data))

    def _transaction(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        events = data.get("event_ids") or []
        summary = "transaction committed"
        if events:
            summary += f" with {len(events)} outbox event{'s' if len(events) > 1 else ''}"
        self._step(item, "transaction", "transaction", "committed", summary,
                   {"event_ids": events})

    # -- waits and what ends them -------------------------------------------------------

    def _wait(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        wait_type = str(data.get("wait_type", ""))
        kind = _WAIT_KINDS.get(wait_type, "wait")
        operation = str(data.get("operation", wait_type))
        deadline = _iso(data.get("deadline"))
        key = data.get("key")
        if kind == "timer":
            name, summary = operation, f"{operation} until {_readable(deadline)}"
        elif kind == "event":
            name, summary = str(key), f"waiting for event {key!r}"
        elif kind == "message":
            name, summary = str(key), f"waiting for a message on {key!r}"
        else:
            name, summary = operation, f"waiting ({operation})"
        if kind != "timer" and deadline is not None:
            summary += f" until {_readable(deadline)}"
        step = self._step(item, kind, name, "waiting", summary,
                          {"operation": operation, "deadline": deadline},
                          started_at=item.get("created_at"))
        self._open[str(item.get("activity_id"))] = step

    def _resolve(self, item: dict[str, Any], status: str, summary: Callable[[str | None], str],
                 detail: dict[str, Any], kind: str, name: str) -> None:
        """End the wait open at the item's position, or, when nothing was waited for
        (it was there already), add a step. ``summary`` is given the time waited."""
        step = self._open.pop(str(item.get("activity_id")), None)
        if step is None:
            self._step(item, kind, name, status, summary(None), detail)
            return
        waited = _ms_between(step["started_at"], item.get("created_at"))
        step.update(status=status, at=item.get("created_at"), duration_ms=waited,
                    summary=summary(format_duration(waited)))
        step["detail"].update(plain(detail))
        step["detail"]["ended_seq"] = item.get("id")

    def _timer_fired(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        self._resolve(item, "fired", lambda waited: f"timer fired after {waited}"
                      if waited else "timer fired", {}, "timer", "sleep")

    def _timed_out(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        step = self._open.get(str(item.get("activity_id")))
        what = "" if step is None else " " + step["summary"].split(" until ")[0]
        self._resolve(item, "timed_out", lambda waited: f"timed out after {waited}{what}"
                      if waited else "timed out", {}, "wait", "wait")

    def _event(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        event_type, source = data.get("type", ""), data.get("source", "")
        event = {k: v for k, v in data.items() if k != "event_row"}
        text = f"received event {event_type!r} from {source}"
        self._resolve(item, "received",
                      lambda waited: f"{text} after waiting {waited}" if waited else text,
                      {"event": event}, "event", str(event_type))

    def _message(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        channel = data.get("channel", "")
        detail = {"message_id": data.get("id"), "channel": channel, "data": data.get("data"),
                  "metadata": data.get("metadata"), "published_at": data.get("published_at")}
        text, body = f"received a message on {channel!r}", short(data.get("data"))
        self._resolve(item, "received",
                      lambda waited: f"{text} after waiting {waited}: {body}" if waited
                      else f"{text}: {body}", detail, "message", str(channel))

    def _close_waits(self, item: dict[str, Any], status: str) -> None:
        """Waits still open when the workflow ends (or is cancelled) end with it."""
        for step in self._open.values():
            waited = _ms_between(step["started_at"], item.get("created_at"))
            step.update(status=status, duration_ms=waited,
                        summary=f"{step['summary'].split(' until ')[0]}: {status} after "
                                f"{format_duration(waited)}")
        self._open.clear()

    # -- channels --------------------------------------------------------------------

    def _subscription(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        channel = str(data.get("channel", ""))
        if item.get("event_type") == "Subscribed":
            mode = data.get("mode", "")
            self._step(item, "subscribe", channel, "subscribed",
                       f"subscribed to {channel!r} ({mode})", {"mode": mode})
        else:
            self._step(item, "subscribe", channel, "unsubscribed",
                       f"unsubscribed from {channel!r}", {})

    def _published(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        channel = str(data.get("channel", ""))
        direct = bool(data.get("direct"))
        summary = (f"sent a direct message on {channel!r}" if direct
                   else f"published a message on {channel!r}")
        self._step(item, "publish", channel, "sent", summary,
                   {"message_id": data.get("message_id"), "direct": direct,
                    "receiver_subscribed": bool(data.get("receiver_subscribed"))})

    # -- compensations ---------------------------------------------------------------

    def _compensation_registered(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        comp = data.get("compensation") or {}
        name = str(comp.get("name", ""))
        self._step(item, "compensation", name, "registered",
                   f"registered compensation {_call(name, comp)}",
                   {"input": {"args": comp.get("args", []), "kwargs": comp.get("kwargs", {})}})

    def _compensating(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        error = _error(data)
        self._step(item, "compensation", self._workflow, "started",
                   f"running compensations after {error['type']}: {error['message']}",
                   {"error": error})

    def _compensation_done(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        name = str(data.get("activity_name", ""))
        target = data.get("compensation_id", "")
        detail: dict[str, Any] = {"compensates": target}
        if item.get("event_type") == "CompensationFailed":
            error = detail["error"] = _error(data)
            status, summary = "failed", f"compensation {name} of {target} failed: " \
                                        f"{error['type']}: {error['message']}"
        else:
            status, summary = "completed", f"compensation {name} of {target} ran"
        self._step(item, "compensation", name, status, summary, detail,
                   attempts=data.get("attempts"))

    def _retried(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        """A failed instance runs again: the steps it names no longer count."""
        superseded = [s for s in data.get("superseded", []) if isinstance(s, int)]
        for step in self.steps:
            if step["seq"] in superseded or step["detail"].get("ended_seq") in superseded:
                step["detail"]["superseded_by"] = item.get("id")
        by = data.get("retried_by", "")
        self._step(item, "retry", self._workflow, "retried",
                   f"retried by {by}: runs again from its last good step",
                   {"retried_by": by, "retried_at": _iso(data.get("retried_at")),
                    "superseded": superseded})

    def _body_ended(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        """The body ended while other branches still ran activities."""
        self._step(item, "workflow", self._workflow, "ending",
                   "the body ended while other branches still ran a step: those finish, "
                   "nothing new starts", {"calls": data.get("calls")})

    # -- anything newer than this module ----------------------------------------------

    def _other(self, item: dict[str, Any], data: dict[str, Any]) -> None:
        event_type = str(item.get("event_type", ""))
        self._step(item, "workflow", self._workflow, _snake(event_type), event_type, dict(data))
