"""A re-run's start: the nodes it does not run again take the outputs they had in the run
it re-runs (copied, never executed)."""

from __future__ import annotations

from runner.engine.journal import Journal
from runner.engine.run_state import RunState
from runner.errors import RunNotFoundError
from runner.graph.plan import ExecutionPlan
from runner.models import NodeStatus, Run
from runner.store.protocol import Store


async def copy_earlier_outputs(
    run: Run, plan: ExecutionPlan, state: RunState, journal: Journal, store: Store
) -> None:
    """Record succeeded, with their earlier outputs, the nodes of the re-run `run` that do
    not run again; committed before any node starts."""
    source = run.lineage.rerun_of
    assert source is not None
    again = set(run.lineage.rerun_nodes or ())
    try:
        earlier = await store.list_node_runs(source)
    except RunNotFoundError:  # deleted since: everything runs
        earlier = []
    copied = [
        n
        for n in earlier
        if n.status is NodeStatus.SUCCEEDED and n.node_id in plan.nodes and n.node_id not in again
    ]
    for node in copied:
        journal.node_copied(node.node_id, output=node.output, input=node.input, source=source)
        state.restore(node.node_id, NodeStatus.SUCCEEDED, node.output)
    journal.log(
        None,
        "info",
        f"re-run of {source}: {len(copied)} node output(s) copied, "
        f"{len(plan.nodes) - len(copied)} node(s) to run",
        {"rerun_of": str(source), "copied": [n.node_id for n in copied]},
    )
    await journal.commit()
