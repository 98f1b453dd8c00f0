"""Runner value objects turned into wire types."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response

from runner.models import NodeRun, Run, Workflow
from web.schemas import NodeRunOut, RunOut, RunSummary, WorkflowOut


def workflow_out(workflow: Workflow) -> WorkflowOut:
    return WorkflowOut.model_validate(workflow.to_json())


def run_out(run: Run) -> RunOut:
    return RunOut.model_validate(run.to_json())


def run_summary(run: Run) -> RunSummary:
    return RunSummary.model_validate(run.to_json())


def node_run_out(node: NodeRun) -> NodeRunOut:
    return NodeRunOut.model_validate(node.to_json())


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response built directly: the hot routes (triggers, GET /runs/{id}) skip
    quart-schema's per-request conversions; their shapes are documented on the route and
    checked by the schemathesis suite."""
    return Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
