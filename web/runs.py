"""Runs: history, one run, its node runs and its logs."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response
from quart_schema import document_request, document_response, validate_querystring

from web.bodies import read_model
from web.context import weft
from web.filters import RunsPage
from web.schemas import (
    ErrorResponse,
    LogList,
    LogsPage,
    NodeRunList,
    RerunIn,
    RunList,
    RunOut,
)
from web.views import json_response, page_of_runs

blueprint = Blueprint("runs", __name__)


@blueprint.get("/runs")
@validate_querystring(RunsPage)
@document_response(RunList)
async def list_runs(query_args: RunsPage) -> Response:
    """Every run, newest first; page with ?before=<last id>. Filters: `status` and
    `trigger_type` (one or several, repeated or comma-separated), `since` (inclusive) and
    `until` (exclusive) on the creation time, `parent_run_id`."""
    runs = await weft().list_runs(
        limit=query_args.limit, before=query_args.before, filters=query_args.filters()
    )
    return json_response(page_of_runs(runs, query_args.limit))


@blueprint.get("/runs/<uuid:run_id>")
@document_response(RunOut)
@document_response(ErrorResponse, 404)
async def get_run(run_id: UUID) -> Response:
    """A run: status, timings, progress, duration and (when finished) outputs."""
    return json_response((await weft().get_run(run_id)).to_json())


@blueprint.post("/runs/<uuid:run_id>/cancel")
@document_response(RunOut)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 409)
async def cancel_run(run_id: UUID) -> Response:
    """Cancel a pending or running run (idempotent); 409 when it has already finished."""
    return json_response((await weft().cancel_run(run_id)).to_json())


@blueprint.delete("/runs/<uuid:run_id>")
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 409)
async def delete_run(run_id: UUID) -> tuple[str, int]:
    """Delete a finished run with its node runs, logs and events (its artifacts' records
    too; their files stay): 204. 409 while it is pending or running (cancel it first)."""
    await weft().delete_run(run_id)
    return "", 204


@blueprint.post("/runs/<uuid:run_id>/rerun")
@document_request(RerunIn)
@document_response(RunOut, 202)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 409)
@document_response(ErrorResponse, 422)
async def rerun(run_id: UUID) -> Response:
    """Re-run a finished run on the graph it executed: `from` and everything downstream run
    again, the other nodes succeed with their earlier outputs (copied, not executed)."""
    body = await read_model(RerunIn, default=RerunIn())
    run = await weft().rerun(run_id, from_node=body.from_node)
    return json_response(run.to_json(), 202)


@blueprint.get("/runs/<uuid:run_id>/nodes")
@document_response(NodeRunList)
@document_response(ErrorResponse, 404)
async def get_run_nodes(run_id: UUID) -> Response:
    """Every node run of a run, in graph order: status, timings, input, output, error."""
    nodes = await weft().list_node_runs(run_id)
    return json_response({"run_id": str(run_id), "items": [n.to_json() for n in nodes]})


@blueprint.get("/runs/<uuid:run_id>/logs")
@validate_querystring(LogsPage)
@document_response(LogList)
@document_response(ErrorResponse, 404)
async def get_run_logs(run_id: UUID, query_args: LogsPage) -> Response:
    """The run's log lines in order; page with ?after=<last id>."""
    lines = await weft().list_logs(
        run_id, after=query_args.after, limit=query_args.limit, node_id=query_args.node_id
    )
    return json_response(
        {
            "run_id": str(run_id),
            "items": [line.to_json() for line in lines],
            "next_after": lines[-1].id if len(lines) == query_args.limit else None,
        }
    )
