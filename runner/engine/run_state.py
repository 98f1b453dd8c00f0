"""Which nodes of a run are ready, skipped or done: the run's pure state machine.

The async executor is a thin shell around it: it starts what `ready` returns and reports
each node's end back here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blocks.templating import NO_NODES, NodeOutputs
from runner.graph.plan import ExecutionPlan, PlanEdge
from runner.graph.shape import ERROR_PORT, OnError
from runner.models import FINISHED_NODE_STATUSES, NodeStatus

TERMINAL = FINISHED_NODE_STATUSES


@dataclass
class Step:
    """What a change of state unlocked: nodes to start now, nodes now known skipped."""

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class RunState:
    """The statuses and outputs of one run's nodes, advanced one event at a time."""

    def __init__(self, plan: ExecutionPlan) -> None:
        self.plan = plan
        self.status: dict[str, NodeStatus] = dict.fromkeys(plan.nodes, NodeStatus.PENDING)
        self.outputs: dict[str, Any] = {}
        self.failed_node: str | None = None
        # Nodes that failed under on_error continue or branch: their run goes on.
        self.handled: set[str] = set()
        self._running = 0
        self._terminal = 0

    # -- questions -------------------------------------------------------------------------

    @property
    def failing(self) -> bool:
        return self.failed_node is not None

    @property
    def running(self) -> int:
        return self._running

    @property
    def terminal_count(self) -> int:
        """How many nodes are in a final state."""
        return self._terminal

    @property
    def finished(self) -> bool:
        """True once nothing runs and nothing more will start."""
        if self._running:
            return False
        return self.failing or self._terminal == len(self.status)

    @property
    def progress(self) -> int:
        """Percent of nodes in a final state."""
        return 100 * self._terminal // len(self.status) if self.status else 100

    def upstream(self, node_id: str) -> dict[str, Any]:
        """Outputs of the node's parents that succeeded (or failed, handled), by parent id."""
        return {p: self.outputs[p] for p in self.plan.nodes[node_id].parents if p in self.outputs}

    def visible(self, node_id: str) -> NodeOutputs:
        """`nodes` for the node's templates: its ancestors' outputs, read when used."""
        sees = self.plan.nodes[node_id].sees
        return NodeOutputs(sees, self.outputs) if sees else NO_NODES

    # -- events ----------------------------------------------------------------------------

    def start(self) -> Step:
        """The nodes to run first (roots), and any resumed node's consequences."""
        step = Step()
        for node_id in self.plan.order:
            if node_id in step.ready:  # released already by a skip cascade above
                continue
            if self.status[node_id] is NodeStatus.PENDING and self._decide(node_id, step):
                step.ready.append(node_id)
        return step

    def restore(self, node_id: str, status: NodeStatus, output: Any = None) -> None:
        """Load a node's state committed by an earlier attempt at this run (resume): a
        success, or a failure its on_error handled (its output is its error)."""
        self._set(node_id, status)
        if status is NodeStatus.FAILED:
            self.handled.add(node_id)
        self.outputs[node_id] = output

    def mark_running(self, node_id: str) -> None:
        self._set(node_id, NodeStatus.RUNNING)

    def mark_succeeded(self, node_id: str, output: Any) -> Step:
        self.outputs[node_id] = output
        self._set(node_id, NodeStatus.SUCCEEDED)
        step = Step()
        if not self.failing:
            self._release_children(node_id, step)
        return step

    def mark_failed(self, node_id: str) -> None:
        """A failure that fails the run (on_error fail)."""
        self._set(node_id, NodeStatus.FAILED)
        if self.failed_node is None:
            self.failed_node = node_id

    def mark_handled(self, node_id: str, output: dict[str, Any]) -> Step:
        """A failure its on_error handles: recorded failed, `output` ({"error": …}) for its
        children; its edges are taken as on_error says."""
        self.outputs[node_id] = output
        self.handled.add(node_id)
        self._set(node_id, NodeStatus.FAILED)
        step = Step()
        if not self.failing:
            self._release_children(node_id, step)
        return step

    def mark_cancelled(self, node_id: str) -> None:
        self._set(node_id, NodeStatus.CANCELLED)

    def mark_pending(self, node_id: str) -> None:
        """A running node was interrupted (a shutdown): it will run again on resume."""
        self._set(node_id, NodeStatus.PENDING)

    def cancel_unstarted(self) -> list[str]:
        """After a cancellation: every node never started is cancelled."""
        cancelled = [n for n, s in self.status.items() if s is NodeStatus.PENDING]
        for node_id in cancelled:
            self._set(node_id, NodeStatus.CANCELLED)
        return cancelled

    def skip_unstarted(self) -> list[str]:
        """After a failure: every node never started is skipped."""
        skipped = [n for n, s in self.status.items() if s is NodeStatus.PENDING]
        for node_id in skipped:
            self._set(node_id, NodeStatus.SKIPPED)
        return skipped

    # -- internals -------------------------------------------------------------------------

    def _set(self, node_id: str, status: NodeStatus) -> None:
        previous = self.status[node_id]
        if previous is NodeStatus.RUNNING:
            self._running -= 1
        if previous in TERMINAL:
            self._terminal -= 1
        self.status[node_id] = status
        if status is NodeStatus.RUNNING:
            self._running += 1
        if status in TERMINAL:
            self._terminal += 1

    def _edge_taken(self, edge: PlanEdge) -> bool:
        source = self.plan.nodes[edge.source]
        on_error = source.policy.on_error
        failed = edge.source in self.handled
        if on_error is OnError.BRANCH and edge.port == ERROR_PORT:
            return failed
        if failed:  # as if it had succeeded, but a branching block chose no port
            return on_error is OnError.CONTINUE and (not source.block.branching or not edge.port)
        if self.status[edge.source] is not NodeStatus.SUCCEEDED:
            return False
        if not source.block.branching or edge.port is None:
            return True
        output = self.outputs.get(edge.source)
        return isinstance(output, dict) and output.get("port") == edge.port

    def _decide(self, node_id: str, step: Step) -> bool:
        """For a pending node: True when it can run now; marks it skipped when it never will."""
        incoming = self.plan.nodes[node_id].incoming
        if not incoming:
            return True
        if any(self.status[e.source] not in TERMINAL for e in incoming):
            return False
        if any(self._edge_taken(e) for e in incoming):
            return True
        self._set(node_id, NodeStatus.SKIPPED)
        step.skipped.append(node_id)
        self._release_children(node_id, step)
        return False

    def _release_children(self, node_id: str, step: Step) -> None:
        for edge in self.plan.nodes[node_id].outgoing:
            child = edge.target
            if self.status[child] is NodeStatus.PENDING and child not in step.ready:
                if self._decide(child, step):
                    step.ready.append(child)
