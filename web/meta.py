"""Health, the block palette, and graph validation."""

from __future__ import annotations

import os

from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from runner.graph.shape import Graph
from web.context import weft
from web.schemas import BlockList, ErrorResponse, HealthOut, ValidationOut
from web.views import json_response

blueprint = Blueprint("meta", __name__)


@blueprint.get("/healthz")
@document_response(HealthOut)
async def healthz() -> Response:
    """Readiness: the database answers and the runtime is up (503 otherwise)."""
    stats = (await weft().health()).statistics
    return json_response(
        {
            "status": "ok",
            "database": "ok",
            "supervisors": stats.supervisors,
            "runs_in_flight": stats.runs_in_flight,
            "pid": os.getpid(),  # which worker answered (WEB_CONCURRENCY)
        }
    )


@blueprint.get("/blocks")
@document_response(BlockList)
async def list_blocks() -> Response:
    """Registered block types with their params JSON Schema (the editor's palette)."""
    return json_response(
        {
            "items": [
                {
                    "type": b.type,
                    "description": b.description,
                    "params_schema": b.params_schema(),
                    "branching": b.branching,
                    "ports": list(b.ports) if b.ports else None,
                    "blocking": b.blocking,
                }
                for b in weft().blocks()
            ],
            "node_policy_schema": weft().node_policy_schema(),
        }
    )


@blueprint.post("/validate-graph")
@validate_request(Graph)
@document_response(ValidationOut)
@document_response(ErrorResponse, 422)
async def validate_graph(data: Graph) -> Response:
    """Validate a graph: 200 with its execution order, or 422 listing every problem."""
    return json_response({"valid": True, "order": weft().validate_graph(data)})
