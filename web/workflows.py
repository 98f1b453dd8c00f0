"""Workflows: create, list and search, fetch, overwrite, duplicate, delete, run, and their run
history."""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, Response, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    validate_querystring,
    validate_request,
)

from runner.facade import Durability
from runner.models import RateLimit
from web.bodies import read_model
from web.context import weft
from web.errors import ApiError
from web.filters import RunsPage, WorkflowsPage
from web.schemas import (
    DuplicateIn,
    ErrorResponse,
    NodeTestIn,
    NodeTestOut,
    RunBatchIn,
    RunBatchOut,
    RunIn,
    RunList,
    RunOut,
    WorkflowIn,
    WorkflowList,
    WorkflowOut,
    WorkflowRateLimit,
)
from web.triggers import IDEMPOTENCY_HEADER, TriggerQuery, trigger
from web.views import json_response, page_of_runs

blueprint = Blueprint("workflows", __name__)


def rate_limit_of(sent: WorkflowRateLimit | None) -> RateLimit | None:
    return None if sent is None else RateLimit(sent.requests, sent.per_s)


@blueprint.post("/workflows")
@validate_request(WorkflowIn)
@document_response(WorkflowOut, 201)
@document_response(ErrorResponse, 409)
@document_response(ErrorResponse, 422)
async def create_workflow(data: WorkflowIn) -> Response:
    """Create a workflow; its graph is validated first (422 lists every problem)."""
    workflow = await weft().create_workflow(
        name=data.name,
        graph=data.graph,
        webhook_slug=data.webhook_slug,
        webhook_secret=data.webhook_secret,
        max_concurrency=data.max_concurrency,
        durability=Durability(data.durability),
        description=data.description,
        tags=tuple(data.tags),
        rate_limit=rate_limit_of(data.rate_limit),
    )
    return json_response(workflow.to_json(), 201)


@blueprint.get("/workflows")
@validate_querystring(WorkflowsPage)
@document_response(WorkflowList)
async def list_workflows(query_args: WorkflowsPage) -> Response:
    """Workflows, most recently updated first; with `q`, those whose name contains it (any
    case), with `tag`, those having it. `total` counts every workflow the filters keep."""
    items, total = await weft().list_workflows(
        limit=query_args.limit, offset=query_args.offset, filters=query_args.filters()
    )
    return json_response(
        {
            "items": [w.to_json() for w in items],
            "total": total,
            "limit": query_args.limit,
            "offset": query_args.offset,
        }
    )


@blueprint.get("/workflows/<uuid:workflow_id>")
@document_response(WorkflowOut)
@document_response(ErrorResponse, 404)
async def get_workflow(workflow_id: UUID) -> Response:
    """One workflow with its graph."""
    return json_response((await weft().get_workflow(workflow_id)).to_json())


@blueprint.put("/workflows/<uuid:workflow_id>")
@validate_request(WorkflowIn)
@document_response(WorkflowOut)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 409)
@document_response(ErrorResponse, 422)
async def put_workflow(workflow_id: UUID, data: WorkflowIn) -> Response:
    """Overwrite name, slug and graph; runs in flight finish on the graph they started with.
    An omitted webhook_slug, webhook_secret, description or tags keeps the one the workflow
    has; an omitted max_concurrency or rate_limit clears it."""
    sent = data.model_fields_set
    workflow = await weft().update_workflow(
        workflow_id,
        name=data.name,
        graph=data.graph,
        webhook_slug=data.webhook_slug,
        webhook_secret=data.webhook_secret,
        keep_secret="webhook_secret" not in sent,
        max_concurrency=data.max_concurrency,
        durability=Durability(data.durability),
        description=data.description if "description" in sent else None,
        tags=tuple(data.tags) if "tags" in sent else None,
        rate_limit=rate_limit_of(data.rate_limit),
    )
    return json_response(workflow.to_json())


@blueprint.post("/workflows/<uuid:workflow_id>/duplicate")
@document_request(DuplicateIn)
@document_response(WorkflowOut, 201)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
async def duplicate_workflow(workflow_id: UUID) -> Response:
    """Copy a workflow (the editor's "save as", or a new workflow from a template): its
    graph, description, tags, max_concurrency, rate_limit and durability, under `name` (by
    default "<name> (copy)"). The copy gets a new random webhook slug; the webhook secret is
    NOT copied (set one with PUT), and neither are runs. 201 with the new workflow; 422 also
    when the graph no longer validates (a block it uses is gone). The body may be empty."""
    body = await read_model(DuplicateIn, default=DuplicateIn())
    workflow = await weft().duplicate_workflow(workflow_id, name=body.name)
    return json_response(workflow.to_json(), 201)


@blueprint.delete("/workflows/<uuid:workflow_id>")
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 409)
async def delete_workflow(workflow_id: UUID) -> tuple[str, int]:
    """Delete a workflow and its run history (409 while it has unfinished runs)."""
    await weft().delete_workflow(workflow_id)
    return "", 204


@blueprint.post("/workflows/<uuid:workflow_id>/run")
@document_request(RunIn)
@document_querystring(TriggerQuery)
@document_response(RunOut, 200)
@document_response(RunOut, 202)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 429)
@document_response(ErrorResponse, 503)
async def run_workflow(workflow_id: UUID) -> Response:
    """Start a run on the current graph: 202 at once with the pending run (200 with the
    finished run under ?wait, or the earlier run for a repeated Idempotency-Key); 429 with
    Retry-After over the workflow's rate_limit (every call counts, a repeated key too)."""
    body = await read_model(RunIn, default=RunIn())
    payload = body.start_input if body.start_input is not None else {}
    return await trigger(
        lambda key: weft().start_run(workflow_id, payload=payload, idempotency_key=key)
    )


@blueprint.post("/workflows/<uuid:workflow_id>/runs/batch")
@validate_request(RunBatchIn)
@document_response(RunBatchOut, 202)
@document_response(ErrorResponse, 400)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
@document_response(ErrorResponse, 429)
@document_response(ErrorResponse, 503)
async def run_workflow_batch(workflow_id: UUID, data: RunBatchIn) -> Response:
    """Start up to 1000 runs at once on the current graph (one database statement): 202
    with the pending runs, in order. For load tests and fan-out triggers. A batch of k counts
    k against the workflow's rate_limit: 429 with Retry-After when they do not fit now (none
    is started), 422 when k is more than the limit's `requests`."""
    if request.headers.get(IDEMPOTENCY_HEADER) is not None:
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"{IDEMPOTENCY_HEADER} is not supported on batches: start runs one by one",
        )
    runs = await weft().start_runs(
        workflow_id,
        payloads=[r.start_input if r.start_input is not None else {} for r in data.runs],
    )
    return json_response({"items": [run.to_json() for run in runs]}, 202)


@blueprint.get("/workflows/<uuid:workflow_id>/runs")
@validate_querystring(RunsPage)
@document_response(RunList)
@document_response(ErrorResponse, 404)
async def list_workflow_runs(workflow_id: UUID, query_args: RunsPage) -> Response:
    """A workflow's run history, newest first, filtered as GET /runs is."""
    runs = await weft().list_runs(
        limit=query_args.limit,
        before=query_args.before,
        workflow_id=workflow_id,
        filters=query_args.filters(),
    )
    return json_response(page_of_runs(runs, query_args.limit))


@blueprint.post("/workflows/<uuid:workflow_id>/nodes/<node_id>/test")
@document_request(NodeTestIn)
@document_response(NodeTestOut, 200)
@document_response(ErrorResponse, 404)
@document_response(ErrorResponse, 422)
async def test_node(workflow_id: UUID, node_id: str) -> Response:
    """Run one node of the current graph on its own (an editor's "execute step"), over the
    given `upstream`, `trigger` and `nodes`, without creating a run: 200 with its status,
    output or error, log lines and duration. Its retries, timeout and output cap apply; what
    the block writes elsewhere is written (a gcs.write puts its object in the bucket)."""
    body = await read_model(NodeTestIn, default=NodeTestIn())
    result = await weft().try_node(
        workflow_id, node_id, upstream=body.upstream, trigger=body.trigger, nodes=body.nodes
    )
    return json_response(result.to_json())
