"""Runs: history, one run, its node runs and its logs."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring, validate_response

from web.app import system
from web.schemas import (
    ErrorResponse,
    LogList,
    LogOut,
    LogsPage,
    NodeRunList,
    RunList,
    RunOut,
    RunsPage,
)
from web.views import json_response, node_run_out, run_out, run_summary

blueprint = Blueprint("runs", __name__)


@blueprint.get("/runs")
@validate_querystring(RunsPage)
@validate_response(RunList)
async def list_runs(query_args: RunsPage) -> RunList:
    """Every run, newest first; page with ?before=<last id>."""
    runs = await system().store.list_runs(limit=query_args.limit, before=query_args.before)
    return RunList(
        items=[run_summary(r) for r in runs],
        next_before=runs[-1].id if len(runs) == query_args.limit else None,
    )


@blueprint.get("/runs/<uuid:run_id>")
@document_response(RunOut)
@document_response(ErrorResponse, 404)
async def get_run(run_id: UUID) -> Response:
    """A run: status, timings, progress, duration and (when finished) outputs."""
    return json_response((await system().store.get_run(run_id)).to_json())


@blueprint.post("/runs/<uuid:run_id>/cancel")
@validate_response(RunOut)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 409)
async def cancel_run(run_id: UUID) -> RunOut:
    """Cancel a pending or running run (idempotent); 409 when it has already finished."""
    return run_out(await system().runtime.cancel_run(run_id))


@blueprint.get("/runs/<uuid:run_id>/nodes")
@validate_response(NodeRunList)
@validate_response(ErrorResponse, 404)
async def get_run_nodes(run_id: UUID) -> NodeRunList:
    """Every node run of a run, in graph order: status, timings, input, output, error."""
    weft = system()
    await weft.store.get_run(run_id)
    nodes = await weft.store.list_node_runs(run_id)
    return NodeRunList(run_id=run_id, items=[node_run_out(n) for n in nodes])


@blueprint.get("/runs/<uuid:run_id>/logs")
@validate_querystring(LogsPage)
@validate_response(LogList)
@validate_response(ErrorResponse, 404)
async def get_run_logs(run_id: UUID, query_args: LogsPage) -> LogList:
    """The run's log lines in order; page with ?after=<last id>."""
    weft = system()
    await weft.store.get_run(run_id)
    lines = await weft.store.list_logs(
        run_id, after=query_args.after, limit=query_args.limit, node_id=query_args.node_id
    )
    return LogList(
        run_id=run_id,
        items=[
            LogOut(
                id=line.id,
                node_id=line.node_id,
                ts=line.ts,
                level=line.level,
                message=line.message,
                data=line.data,
            )
            for line in lines
        ],
        next_after=lines[-1].id if len(lines) == query_args.limit else None,
    )
