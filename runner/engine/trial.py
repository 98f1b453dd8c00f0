"""A node tried on its own (an editor's "execute step"): its block run once over the data a
caller gives, with its retries, timeout and output cap, without a run.

Nothing is recorded: no run, node run, log line or event. What the block writes elsewhere is
written as usual (a gcs.write puts its object in the bucket; its artifact gets no row, since
there is no run to hold it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from blocks.context import ArtifactStore, RunContext
from blocks.templating import NO_SECRETS, NodeOutputs, SecretValues
from runner.engine.attempt import Failed, OutputCap, Result, error_info, now, perform, prepare
from runner.engine.items import perform_items, render_items
from runner.engine.node_log import NodeListener, NodeLog
from runner.engine.services import RunServices
from runner.graph.plan import PlanNode
from runner.records import ItemResult
from runner.secrets import Redactor


@dataclass
class TrialRecorder:
    """Collects a trial's log lines (the Recorder and ItemRecorder of a run's Journal)."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    def log(
        self, node_id: str | None, level: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        self.lines.append(
            {"ts": now().isoformat(), "level": level, "message": message, "data": data or None}
        )

    def node_started(
        self, node_id: str, node_type: str, attempt: int, started_at: datetime, input: str
    ) -> None:
        pass

    def item_ended(
        self,
        node_id: str,
        index: int,
        *,
        encoded: bytes | None,
        error: dict[str, Any] | None,
        done: int,
        total: int,
    ) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TrialResult:
    """How a tried node ended: its output or error, its log lines and how long it took."""

    status: str
    output: Any
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "logs": self.logs,
            "duration_ms": self.duration_ms,
        }


async def try_node(
    node: PlanNode,
    services: RunServices,
    *,
    workflow_id: UUID,
    upstream: dict[str, Any],
    trigger: Any,
    nodes: dict[str, Any],
    artifacts: ArtifactStore,
) -> TrialResult:
    """Run the node's block once (once per item with for_each) over the given data;
    `artifacts` writes what it stores (without rows: there is no run)."""
    began = time.perf_counter()
    recorder = TrialRecorder()
    log = NodeLog(recorder, node.id)
    trial_id = uuid4()  # in artifact paths: trials never overwrite one another

    def context(params: Any, attempt: int) -> RunContext:
        return RunContext(
            run_id=trial_id,
            workflow_id=workflow_id,
            node_id=node.id,
            attempt=attempt,
            timeout_s=node.timeout_s,
            params=params,
            http=services.http,
            artifacts=artifacts,
            log=log,
            settings=services.block_settings,
        )

    cap = OutputCap(services.limits.max_output_bytes, artifacts)
    visible = NodeOutputs(frozenset(nodes), nodes)
    started_at = now()
    result: Result
    redactor = Redactor()
    try:
        secrets = NO_SECRETS
        if node.uses_secrets and services.secrets is not None:
            values = await services.secrets.values()
            redactor.add(values.values())
            secrets = SecretValues(values)
        if node.policy.for_each is not None:
            items = render_items(
                node,
                upstream,
                trigger,
                visible,
                max_items=services.limits.max_items,
                secrets=secrets,
            )
            result = await perform_items(
                node,
                items,
                finished=dict[int, ItemResult](),
                journal=recorder,
                context=context,
                cap=cap,
                started_at=started_at,
            )
        else:
            node_input = prepare(node, upstream, trigger, visible, secrets=secrets)
            result = await perform(
                node,
                node_input,
                context=lambda attempt: context(node_input.params, attempt),
                cap=cap,
                listener=NodeListener(recorder, node, ""),
            )
    except Exception as exc:  # a template, params or list error
        result = Failed(error_info(exc), 1, started_at)
    took = round((time.perf_counter() - began) * 1000)
    logs = redactor.value(recorder.lines) if redactor else recorder.lines
    if isinstance(result, Failed):
        return TrialResult("failed", None, redactor.value(result.error), logs, took)
    return TrialResult("succeeded", redactor.value(result.output), None, logs, took)
