"""Runs started by runs: the SubWorkflows that a workflow.run node uses, bound to its run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from blocks.context import ChildRun
from runner.models import Lineage, Run

if TYPE_CHECKING:
    from runner.runtime.runs import Runs

DEFAULT_MAX_DEPTH = 5


class NestingTooDeepError(RuntimeError):
    """A workflow.run would nest runs deeper than WEFT_MAX_DEPTH."""


class ChildRuns:
    """Starts children of runs through Runs (attached once the runtime has made it)."""

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._runs: Runs | None = None

    def attach(self, runs: Runs) -> None:
        self._runs = runs

    def of(self, parent: Run, mask: Callable[[Any], Any] = lambda v: v) -> BoundChildRuns:
        """The SubWorkflows a block of `parent` sees; `mask` hides the secrets the parent
        read in what a child is given."""
        return BoundChildRuns(self, parent, mask)

    async def start_and_wait(
        self, parent: Run, workflow_id: UUID, payload: Any, key: str
    ) -> ChildRun:
        assert self._runs is not None, "attached by the runtime"
        depth = parent.lineage.depth + 1
        if depth > self.max_depth:
            raise NestingTooDeepError(
                f"a workflow.run in run {parent.id} would nest runs {depth} deep; at most "
                f"{self.max_depth} (WEFT_MAX_DEPTH): does a workflow run itself?"
            )
        # The idempotency key makes the child findable again: a resumed parent waits for
        # the child it started instead of starting another.
        run, created = await self._runs.start(
            workflow_id,
            trigger_type="workflow",
            payload=payload,
            idempotency_key=f"weft-child:{parent.id}:{key}",
            lineage=Lineage(parent_run_id=parent.id, depth=depth),
        )
        ended = await self._runs.wait_finished(run.id, unfinished=created)
        return ChildRun(ended.id, str(ended.status), ended.outputs, ended.error)


class BoundChildRuns:
    """ChildRuns for one parent run (the SubWorkflows protocol of blocks.context)."""

    def __init__(self, children: ChildRuns, parent: Run, mask: Callable[[Any], Any]) -> None:
        self._children = children
        self._parent = parent
        self._mask = mask

    async def run(self, workflow_id: UUID, payload: Any, *, key: str) -> ChildRun:
        # A child's payload is stored with it: no secret of the parent goes in clear.
        payload = self._mask(payload)
        return await self._children.start_and_wait(self._parent, workflow_id, payload, key)
