"""Runner value objects turned into wire types."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.models import NodeRun, Run, Workflow, human_duration
from web.schemas import NodeRunOut, RunOut, RunSummary, WorkflowOut


def workflow_out(workflow: Workflow) -> WorkflowOut:
    return WorkflowOut(
        id=workflow.id,
        name=workflow.name,
        webhook_slug=workflow.webhook_slug,
        webhook_url=f"/hooks/{workflow.webhook_slug}",
        has_webhook_secret=bool(workflow.webhook_secret),
        graph=workflow.graph,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


def run_out(run: Run) -> RunOut:
    return RunOut(
        **run_summary(run).model_dump(),
        trigger_payload=run.trigger_payload,
        progress=run.progress,
        outputs=run.outputs,
    )


def run_summary(run: Run) -> RunSummary:
    duration_ms = run.duration_ms(datetime.now(UTC))
    return RunSummary(
        id=run.id,
        workflow_id=run.workflow_id,
        status=run.status,
        trigger_type=run.trigger_type,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=duration_ms,
        duration=None if duration_ms is None else human_duration(duration_ms),
        error=run.error,
    )


def node_run_out(node: NodeRun) -> NodeRunOut:
    return NodeRunOut(
        node_id=node.node_id,
        node_type=node.node_type,
        status=node.status,
        attempt=node.attempt,
        started_at=node.started_at,
        finished_at=node.finished_at,
        duration_ms=node.duration_ms,
        input=node.input,
        output=node.output,
        error=node.error,
    )
