"""Health, the block palette, and graph validation."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import validate_request, validate_response

from runner.graph.plan import build_plan
from runner.graph.shape import Graph
from web.app import system
from web.errors import ApiError
from web.schemas import BlockList, BlockOut, HealthOut, ValidationOut

blueprint = Blueprint("meta", __name__)


@blueprint.get("/healthz")
@validate_response(HealthOut)
async def healthz() -> HealthOut:
    """Readiness: the database answers and the runtime is up."""
    weft = system()
    try:
        await weft.store.ping()
    except Exception as exc:
        raise ApiError(503, "database_unavailable", f"the database does not answer: {exc}") from exc
    stats = weft.runtime.statistics()
    return HealthOut(
        status="ok",
        database="ok",
        supervisors=stats.supervisors,
        runs_in_flight=stats.runs_in_flight,
    )


@blueprint.get("/blocks")
@validate_response(BlockList)
async def list_blocks() -> BlockList:
    """Registered block types with their params JSON Schema (the editor's palette)."""
    return BlockList(
        items=[
            BlockOut(
                type=b.type,
                description=b.description,
                params_schema=b.params_schema(),
                branching=b.branching,
                ports=list(b.ports) if b.ports else None,
            )
            for b in system().runtime.registry
        ]
    )


@blueprint.post("/validate-graph")
@validate_request(Graph)
@validate_response(ValidationOut)
async def validate_graph(data: Graph) -> ValidationOut:
    """Validate a graph: 200 with its execution order, or 422 listing every problem."""
    plan = build_plan(data, system().runtime.registry)  # raises InvalidGraphError → 422
    return ValidationOut(valid=True, order=list(plan.order))
