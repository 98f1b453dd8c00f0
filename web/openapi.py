"""The OpenAPI description, completed with what decorators cannot say, and kept true to
what the server enforces: the error statuses every route may answer (and the ErrorResponse
schema they refer to), binary and streaming bodies, which request bodies are required, that
no string holds a NUL character (PostgreSQL cannot store one), that a node's type is a
registered block, and links from a created resource to what can be done with it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from quart_schema import OpenAPIProvider

from web.context import weft
from web.schemas import ErrorResponse

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
OPTIONAL_BODIES = {
    ("post", "/workflows/{workflow_id}/run"),
    ("post", "/workflows/{workflow_id}/duplicate"),
    ("post", "/hooks/{slug}"),
}
PUBLIC = {"/healthz"}

# quart-schema keys responses by int status.
_DESCRIPTIONS = {
    400: "The body is not JSON (malformed_json) or is missing (missing_body).",
    401: "WEFT_API_TOKEN is set and the request lacks it (or a webhook signature is bad).",
    413: "The body is larger than WEFT_MAX_BODY_BYTES.",
    422: "The body or query string does not validate (details list every problem).",
    503: "Shutting down, or the database is unreachable; retry shortly.",
}


def _rate_limited() -> dict[str, Any]:
    """A 429: a trigger over its workflow's rate_limit, told when to call again."""
    retry_after = {
        "description": "Whole seconds until the call fits (rounded up, at least 1).",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "description": "Over the workflow's rate_limit: nothing was started; call again "
        "after Retry-After seconds.",
        "content": {"application/json": {"schema": ERROR_REF}},
        "headers": {"Retry-After": retry_after},
    }


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


NO_NUL = "^[^\\u0000]*$"
# Free-form values (payloads, outputs, editor fields) are any JSON; the server refuses a NUL in
# them too, at any depth, which JSON Schema can only say with a recursive schema, and client
# generators (openapi-python-client among them) do not follow one. So it is said in words
# there, and by a pattern wherever a string or a key is typed.
FREE_FORM = "Any JSON value; no string or key in it may hold the NUL character (422)."
# What a created resource's answer leads to: (operation, parameter, where its value is).
_WORKFLOW_LINKS = [
    (("get", "/workflows/{workflow_id}"), "workflow_id", "$response.body#/id"),
    (("put", "/workflows/{workflow_id}"), "workflow_id", "$response.body#/id"),
    (("post", "/workflows/{workflow_id}/run"), "workflow_id", "$response.body#/id"),
    (("post", "/workflows/{workflow_id}/runs/batch"), "workflow_id", "$response.body#/id"),
    (("get", "/workflows/{workflow_id}/runs"), "workflow_id", "$response.body#/id"),
    (("post", "/workflows/{workflow_id}/duplicate"), "workflow_id", "$response.body#/id"),
    (("post", "/hooks/{slug}"), "slug", "$response.body#/webhook_slug"),
    (("delete", "/workflows/{workflow_id}"), "workflow_id", "$response.body#/id"),
]
_RUN_LINKS = [
    (("get", "/runs/{run_id}"), "run_id", "$response.body#/id"),
    (("get", "/runs/{run_id}/nodes"), "run_id", "$response.body#/id"),
    (("get", "/runs/{run_id}/logs"), "run_id", "$response.body#/id"),
    (("post", "/runs/{run_id}/cancel"), "run_id", "$response.body#/id"),
]
LINKS = {
    ("post", "/workflows", 201): _WORKFLOW_LINKS,
    ("post", "/workflows/{workflow_id}/duplicate", 201): _WORKFLOW_LINKS,
    ("post", "/workflows/{workflow_id}/run", 202): _RUN_LINKS,
    ("post", "/hooks/{slug}", 202): _RUN_LINKS,
}


def _model_schemas(model: type[ErrorResponse]) -> dict[str, Any]:
    """A model's JSON Schema and those it refers to, as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {model.__name__: schema, **defs}


def _nul_free(node: Any) -> None:
    """Say in every schema below `node` that strings hold no NUL and that free-form values
    are NUL-free JSON (the server refuses NUL with a 422)."""
    if isinstance(node, list):
        for item in node:
            _nul_free(item)
        return
    if not isinstance(node, dict):
        return
    for key in ("properties", "$defs", "schemas", "content", "responses", "paths"):
        if isinstance(node.get(key), dict):
            for value in node[key].values():
                _nul_free(value)
    for key in ("components", "items", "schema", "requestBody", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _nul_free(node[key])
    for key in ("anyOf", "oneOf", "allOf", "parameters"):
        if isinstance(node.get(key), list):
            _nul_free(node[key])
    for method in ("get", "put", "post", "delete"):
        if isinstance(node.get(method), dict):
            _nul_free(node[method])
    if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(node):
        node["pattern"] = NO_NUL
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        node["propertyNames"] = {"pattern": NO_NUL}


def _is_any(schema: dict[str, Any]) -> bool:
    """A schema that allows any value (pydantic's `Any`): no type, no composition."""
    shape = {"type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "properties", "items"}
    return not shape & set(schema)


def _free_form(node: Any) -> None:
    """Every `Any` says what the server takes in it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    if isinstance(sub, dict) and _is_any(sub):
                        sub.setdefault("description", FREE_FORM)
            _free_form(value)
    elif isinstance(node, list):
        for item in node:
            _free_form(item)


def _named_bodies(schema: dict[str, Any]) -> None:
    """Inline request and response models become components referred to by name: client
    generators then make one type of each, not one per operation and status."""
    components = schema["components"]["schemas"]
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
            for body in bodies:
                for media in body.get("content", {}).values():
                    inline = media.get("schema", {})
                    name = inline.get("title")
                    if inline.get("type") != "object" or not name:
                        continue
                    if components.setdefault(name, inline) == inline:
                        media["schema"] = {"$ref": f"#/components/schemas/{name}"}


def _nullable_optional_bodies(schema: dict[str, Any]) -> None:
    """An optional body may also be JSON `null`, which counts as no body."""
    for method, path in OPTIONAL_BODIES:
        operation = schema.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        for media in operation["requestBody"].get("content", {}).values():
            if _is_any(media["schema"]):
                # Any JSON value takes null already (and a generated client chokes on
                # "anything or null"); it says what the server refuses in it.
                media["schema"] = {"description": f"{media['schema'].get('description', '')} "
                                   f"{FREE_FORM}".strip()}  # fmt: skip
            else:
                media["schema"] = {"anyOf": [media["schema"], {"type": "null"}]}


def _links(schema: dict[str, Any]) -> None:
    operations = {
        (method, path): operation["operationId"]
        for path, item in schema.get("paths", {}).items()
        for method, operation in item.items()
        if "operationId" in operation
    }
    for (method, path, status), targets in LINKS.items():
        response = schema["paths"].get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            operations[target]: {"operationId": operations[target], "parameters": {param: at}}
            for target, param, at in targets
            if target in operations
        }


def _block_types(schema: dict[str, Any], block_types: Iterable[str]) -> None:
    node = schema["components"]["schemas"].get("Node")
    if node is not None:
        types = sorted(block_types)
        node["properties"]["type"] = {
            "type": "string",
            "enum": types,
            "description": "A registered block type (GET /blocks lists them).",
        }


def complete_schema(schema: dict[str, Any], block_types: Iterable[str]) -> dict[str, Any]:
    """Add the statuses and bodies weft answers beyond what each route's decorators list."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_model_schemas(ErrorResponse))
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
            if 429 in responses:
                responses[429] = _rate_limited()
    paths = schema.get("paths", {})
    if "/artifacts/{artifact_id}" in paths:
        paths["/artifacts/{artifact_id}"]["get"]["responses"][200] = {
            "description": "The artifact's bytes, with the content type it was stored with.",
            # Any bytes: JSON, text or binary, as the block stored them.
            "content": {"*/*": {"schema": {}}},
        }
    deleted = {
        "/workflows/{workflow_id}": "Deleted, with its run history and schedules.",
        "/schedules/{schedule_id}": "Deleted.",
        "/secrets/{name}": "Deleted.",
        "/runs/{run_id}": "Deleted, with its node runs, logs and events.",
    }
    for path, description in deleted.items():
        if path in paths:
            paths[path]["delete"]["responses"][204] = {"description": description}
    # Under ?wait, a workflow's `respond` node sets the answer: any status 200-599, any body.
    for path in ("/workflows/{workflow_id}/run", "/hooks/{slug}"):
        if path in paths:
            for status in (200, 202):
                answer = paths[path]["post"]["responses"].get(status)
                if answer is not None:
                    answer["description"] = (
                        f"{answer.get('description', '')} Under ?wait, a workflow with a "
                        "`respond` node answers with the status, headers and body it set."
                    ).strip()
                    answer["content"] = {"application/json": {"schema": {}}}
    if "/metrics" in paths:
        paths["/metrics"]["get"]["responses"][200] = {
            "description": "This process's metrics in Prometheus's text format (0.0.4).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
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
    _block_types(schema, block_types)
    _free_form(schema)
    _nul_free(schema)
    _named_bodies(schema)
    _nullable_optional_bodies(schema)
    _links(schema)
    return schema


class WeftOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider, with `complete_schema` applied."""

    def schema(self) -> dict[str, Any]:
        return complete_schema(super().schema(), (b.type for b in weft().blocks()))
