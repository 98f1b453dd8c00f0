"""The OpenAPI description, completed with what decorators cannot say: the error statuses
every route may answer, binary and streaming bodies, and which request bodies are required."""

from __future__ import annotations

from typing import Any

from quart_schema import OpenAPIProvider

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
OPTIONAL_BODIES = {("post", "/workflows/{workflow_id}/run"), ("post", "/hooks/{slug}")}
PUBLIC = {"/healthz"}

# quart-schema keys responses by int status.
_DESCRIPTIONS = {
    400: "The body is not JSON (malformed_json) or is missing (missing_body).",
    401: "WEFT_API_TOKEN is set and the request lacks it (or a webhook signature is bad).",
    413: "The body is larger than WEFT_MAX_BODY_BYTES.",
    422: "The body or query string does not validate (details list every problem).",
    503: "Shutting down, or the database is unreachable; retry shortly.",
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def complete_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the statuses and bodies weft answers beyond what each route's decorators list."""
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
            statuses = [503]
            if path not in PUBLIC:
                statuses.append(401)
            if has_body:
                statuses += [400, 413, 422]
                operation["requestBody"]["required"] = (method, path) not in OPTIONAL_BODIES
            if has_query:
                statuses.append(422)
            for status in statuses:
                responses.setdefault(status, _error(status))
    paths = schema.get("paths", {})
    if "/artifacts/{artifact_id}" in paths:
        paths["/artifacts/{artifact_id}"]["get"]["responses"][200] = {
            "description": "The artifact's bytes, with the content type it was stored with.",
            # Any bytes: JSON, text or binary, as the block stored them.
            "content": {"*/*": {"schema": {}}},
        }
    if "/workflows/{workflow_id}" in paths:
        paths["/workflows/{workflow_id}"]["delete"]["responses"][204] = {
            "description": "Deleted, with its run history."
        }
    if "/runs/{run_id}/events" in paths:
        paths["/runs/{run_id}/events"]["get"]["responses"][200] = {
            "description": "Server-Sent Events: `id: seq`, `event: type`, `data: <message>`.",
            # Each event: `id` (the seq), `event` (the type), `data` (the JSON message).
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "id": {"type": "string"},
                            "event": {"type": "string"},
                            "data": {"type": "string", "contentMediaType": "application/json"},
                        },
                    }
                }
            },
        }
    return schema


class WeftOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider, with `complete_schema` applied."""

    def schema(self) -> dict[str, Any]:
        return complete_schema(super().schema())
