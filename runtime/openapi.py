"""The OpenAPI 3.1 description of the HTTP edge, served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ERROR = {"content": {"application/json": {"schema": _ERROR}}}
_INSTANCE_ID = {"name": "instance_id", "in": "path", "required": True,
                "schema": {"type": "string"}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Edda node", "version": "1",
             "description": "CloudEvents ingress, cancellation and a JSON API for workflow "
                            "instances. Paths are relative to where the app is mounted."},
    "paths": {
        "/{any}": {"post": {
            "summary": "Accept a CloudEvent (structured or binary content mode)",
            "description": "Committed before the answer: a crash after 202 never loses it. "
                           "Wakes workflows waiting for its type; starts an event_handler "
                           "workflow named like the type.",
            "parameters": [{"name": "any", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {
                "application/cloudevents+json": {"schema": {"type": "object"}},
                "application/json": {"schema": {}}}},
            "responses": {"202": _ok("Accepted", {"type": "object", "properties": {
                "status": {"const": "accepted"}}}),
                "400": {"description": "Malformed event (retryable: false)", **_JSON_ERROR},
                "401": {"description": "Refused by the authorize hook", **_JSON_ERROR},
                "413": {"description": "Body larger than max_body_bytes", **_JSON_ERROR},
                "500": {"description": "Internal error (retryable: true)", **_JSON_ERROR}}}},
        "/cancel/{instance_id}": {"post": {
            "summary": "Cancel an instance (Edda's route)", "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("Cancel committed"),
                          "400": {"description": "Not cancellable or unknown"},
                          "401": {"description": "Refused by the authorize hook"}}}},
        "/health": {"get": {"summary": "Liveness of this node",
                            "responses": {"200": _ok("The node runs")}}},
        "/api/workflows": {"get": {
            "summary": "Registered workflows, each with the JSON schema of its input",
            "responses": {"200": _ok("workflows: name, event_handler, input_schema", {
                "type": "object", "properties": {"workflows": {"type": "array", "items": {
                    "type": "object", "required": ["name", "event_handler", "input_schema"],
                    "properties": {
                        "name": {"type": "string"}, "event_handler": {"type": "boolean"},
                        "input_schema": {
                            "type": "object",
                            "description": "JSON schema of the keyword arguments of a start "
                                           "(the workflow's parameters after the context), "
                                           "made by pydantic from its signature"}}}}}})}}},
        "/api/workflows/{name}": {"post": {
            "summary": "Start an instance; returns once it is committed",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}},
                            "description": "The workflow's keyword arguments"},
            "responses": {"202": _ok("Started", {"type": "object", "properties": {
                "instance_id": {"type": "string"}}}),
                "400": {"description": "Arguments do not fit the workflow", **_JSON_ERROR},
                "404": {"description": "No such workflow", **_JSON_ERROR}}}},
        "/api/instances": {"get": {
            "summary": "Instances, newest first, one page at a time",
            "description": "workflow_name and instance_id match a part of the name or id, "
                           "ignoring case; search matches a part of either (of the id only "
                           "beside workflow_name or instance_id).",
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("status", "workflow_name", "instance_id", "search",
                                     "limit", "page_token")],
            "responses": {"200": _ok("instances, next_page_token, has_more")}}},
        "/api/instances/{instance_id}": {"get": {
            "summary": "One instance (status, input, output)", "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("The instance"),
                          "404": {"description": "Unknown", **_JSON_ERROR}}}},
        "/api/instances/{instance_id}/result": {"get": {
            "summary": "Status and, once finished, result or error",
            "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("instance_id, status, finished, result | error"),
                          "404": {"description": "Unknown", **_JSON_ERROR}}}},
        "/api/instances/{instance_id}/history": {"get": {
            "summary": "The instance's journal in Edda's history shape",
            "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("instance_id, history"),
                          "404": {"description": "Unknown", **_JSON_ERROR}}}},
        "/api/instances/{instance_id}/timeline": {"get": {
            "summary": "The instance's journal as readable steps (edda.runtime.timeline)",
            "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("instance_id, timeline: seq, kind, position, name, "
                                     "status, at, started_at, duration_ms, attempts, "
                                     "retries, summary, detail"),
                          "404": {"description": "Unknown", **_JSON_ERROR}}}},
        "/api/nodes": {"get": {
            "summary": "Which node owns what: live nodes and their partitions, read from "
                       "the lease tables (the database's clock)",
            "responses": {"200": _ok("node (this one), partition_count, nodes: node_id, "
                                     "hostname, pid, lease_remaining_seconds, alive, "
                                     "this_node, partitions; partitions: partition, "
                                     "owner_node, epoch, lease_remaining_seconds"),
                          "503": {"description": "The database is unavailable "
                                                 "(retryable: true)", **_JSON_ERROR}}}},
        "/viewer": {"get": {
            "summary": "The web viewer (HTML); behind the authorize hook",
            "description": "Refused by the hook, the page is answered 401 with the same "
                           "body: a loader that asks for a token and sends it as a bearer "
                           "header.",
            "responses": {"200": {"description": "The viewer's page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}},
                          "401": {"description": "Refused by the authorize hook; the body "
                                                 "asks for a token",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/viewer/assets/{name}": {"get": {
            "summary": "A script or style of the viewer",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The file (text/javascript or text/css)"},
                          "401": {"description": "Refused by the authorize hook",
                                  **_JSON_ERROR},
                          "404": {"description": "No such file", **_JSON_ERROR}}}},
        "/api/instances/{instance_id}/cancel": {"post": {
            "summary": "Cancel an instance", "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("Cancel committed"),
                          "400": {"description": "Not cancellable or unknown"}}}},
        "/api/instances/{instance_id}/retry": {"post": {
            "summary": "Run a failed instance again from its last good step",
            "parameters": [_INSTANCE_ID],
            "responses": {"200": _ok("status running, instance_id"),
                          "404": {"description": "Unknown", **_JSON_ERROR},
                          "409": {"description": "Not failed, or compensated when it "
                                                 "failed", **_JSON_ERROR}}}},
    },
    "components": {
        "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "error_type": {"type": "string"},
            "retryable": {"type": "boolean"}}}},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
