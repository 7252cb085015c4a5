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
        "/api/workflows": {"get": {"summary": "Registered workflows",
                                   "responses": {"200": _ok("Workflow names")}}},
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
            "parameters": [{"name": n, "in": "query", "schema": {"type": "string"}}
                           for n in ("status", "workflow_name", "limit", "page_token")],
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
