"""The workflow.run block: a run of another workflow, as a child of this one."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from blocks.context import RunContext
from blocks.registry import block

# A child may run for as long as a run may; its parent's node waits that long.
CHILD_TIMEOUT_S = 24 * 3600.0
WORKFLOW_RUN = "workflow.run"  # the block's type (the runner checks its target when saved)


class WorkflowRunParams(BaseModel):
    """Params of `workflow.run`."""

    model_config = ConfigDict(extra="forbid")
    workflow_id: UUID = Field(description="The workflow to run.")
    input: Any = Field(
        default=None, description="Its trigger payload (the child's `trigger`); {} when omitted."
    )


class ChildRunFailedError(RuntimeError):
    """The child run did not succeed."""


@block(WORKFLOW_RUN, WorkflowRunParams, default_timeout_s=CHILD_TIMEOUT_S)
async def workflow_run(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Runs another workflow and waits for it: {run_id, status, outputs}."""
    params = ctx.params_as(WorkflowRunParams)
    if ctx.workflows is None:
        raise RuntimeError("workflow.run cannot start runs here")
    # One child per node, item and attempt: a resumed run finds the child it started, and
    # a retry starts a fresh one.
    item = f"[{input['index']}]" if "index" in input else ""
    key = f"{ctx.node_id}{item}#{ctx.attempt}"
    payload = {} if params.input is None else params.input
    child = await ctx.workflows.run(params.workflow_id, payload, key=key)
    ctx.log.info(f"child run {child.run_id} {child.status}", run_id=str(child.run_id))
    if child.status != "succeeded":
        error = child.error or {}
        raise ChildRunFailedError(
            f"child run {child.run_id} {child.status}: "
            f"{error.get('type', 'Error')}: {error.get('message', '')}".rstrip(": ")
        )
    return {"run_id": str(child.run_id), "status": child.status, "outputs": child.outputs}
