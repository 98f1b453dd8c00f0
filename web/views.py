"""Responses: value objects' JSON (their `to_json`, the one serialisation) as HTTP."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response

from runner.models import Run


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response, encoded once with orjson. Shapes are documented on each route
    (document_response) and checked against the schema by the schemathesis suite."""
    return Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def page_of_runs(runs: list[Run], limit: int) -> dict[str, Any]:
    """A page of run history, with the cursor of the next page when there may be one."""
    return {
        "items": [r.to_json(summary=True) for r in runs],
        "next_before": str(runs[-1].id) if len(runs) == limit else None,
    }
