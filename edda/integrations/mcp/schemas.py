"""JSON schemas of the four tools of a durable tool: what they take and what they answer.

The start tool takes the workflow's own arguments (`Workflow.input_schema`); the
others take an instance id. Every answer that concerns an instance also comes as
structured content, described here as each tool's output schema. The workflow's
result is any JSON: a workflow's return annotation is not enforced on what it
returns, so promising its schema could break a client that validates.
"""

from __future__ import annotations

from typing import Any

#: Longest ``wait_seconds`` the result tool accepts.
MAX_WAIT_SECONDS = 600.0

_INSTANCE_ID = {"type": "string", "minLength": 1, "maxLength": 255,
                "description": "The instance id the start tool returned."}
_STATUS = {"type": "string", "description": "running, waiting_for_event, waiting_for_timer, "
                                            "waiting_for_message, compensating, completed, "
                                            "failed, cancelled or recurred"}
_WORKFLOW = {"type": "string", "description": "The workflow's name."}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def instance_input() -> dict[str, Any]:
    """The input of the status and cancel tools."""
    schema = _object({"instance_id": _INSTANCE_ID}, ["instance_id"])
    schema["additionalProperties"] = False
    return schema


def result_input() -> dict[str, Any]:
    """The input of the result tool: an instance id, and how long to wait for it to end."""
    schema = _object({
        "instance_id": _INSTANCE_ID,
        "wait_seconds": {
            "type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS,
            "description": "Wait up to this many seconds for the workflow to finish before "
                           "answering (default 0: answer at once). Saves polling the status tool.",
        },
    }, ["instance_id"])
    schema["additionalProperties"] = False
    return schema


def start_output() -> dict[str, Any]:
    return _object({
        "instance_id": {"type": "string", "description": "The new instance's id."},
        "workflow_name": _WORKFLOW,
        "status": {**_STATUS, "description": "Its status once it finished or first waited."},
    }, ["instance_id", "workflow_name", "status"])


def status_output() -> dict[str, Any]:
    return _object({
        "instance_id": _INSTANCE_ID,
        "workflow_name": _WORKFLOW,
        "status": _STATUS,
        "current_activity_id": {"type": ["string", "null"],
                                "description": "The step it is at, such as 'reserve:1'."},
        "completed_activities": {"type": "integer", "minimum": 0},
        "suggested_poll_interval_ms": {"type": "integer", "minimum": 0},
    }, ["instance_id", "workflow_name", "status", "current_activity_id",
        "completed_activities", "suggested_poll_interval_ms"])


def result_output() -> dict[str, Any]:
    return _object({
        "instance_id": _INSTANCE_ID,
        "workflow_name": _WORKFLOW,
        "status": _STATUS,
        "finished": {"type": "boolean",
                     "description": "Whether it has ended (completed, failed or cancelled)."},
        "result": {"description": "What the workflow returned, once completed."},
        "error": _object({"error_type": {"type": "string"}, "error_message": {"type": "string"}},
                         ["error_type", "error_message"]),
    }, ["instance_id", "workflow_name", "status", "finished"])


def cancel_output() -> dict[str, Any]:
    return _object({
        "instance_id": _INSTANCE_ID,
        "workflow_name": _WORKFLOW,
        "status": {**_STATUS, "description": "Its status after the cancel: cancelled once its "
                                             "compensations ran."},
        "cancelled": {"type": "boolean",
                      "description": "Whether it has ended cancelled (its compensations ran)."},
    }, ["instance_id", "workflow_name", "status", "cancelled"])
