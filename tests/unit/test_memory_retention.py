"""The MemoryStore prunes runs as PostgreSQL's prune_runs does (tests/integration/
test_retention.py): finished before the cutoff, oldest first, a batch at a time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from runner.errors import RunNotFinishedError, RunNotFoundError
from runner.models import RunStatus
from runner.store.memory import MemoryStore

pytestmark = pytest.mark.anyio
GRAPH = {"nodes": [{"id": "a", "type": "start"}], "edges": []}


async def test_memory_store_prunes_finished_runs_before_the_cutoff() -> None:
    store = MemoryStore()
    workflow = await store.create_workflow(
        workflow_id=uuid4(), name="W", webhook_slug="w", webhook_secret=None, graph=GRAPH
    )
    now = datetime.now(UTC)
    ids = []
    for days, status in [(40, "succeeded"), (35, "failed"), (20, "succeeded"), (50, "running")]:
        run, _ = await store.insert_run(
            run_id=uuid4(),
            workflow_id=workflow.id,
            trigger_type="manual",
            trigger_payload={},
            lease_owner=uuid4(),
            lease_s=30,
            idempotency_key=f"k{days}",
        )
        finished = None if status == "running" else now - timedelta(days=days)
        store.runs[run.id] = dataclasses.replace(
            run, status=RunStatus(status), finished_at=finished
        )
        ids.append(run.id)
    cutoff = now - timedelta(days=30)
    assert await store.prune_runs(cutoff=cutoff, limit=1) == 1
    assert ids[0] not in store.runs  # the oldest first
    assert await store.prune_runs(cutoff=cutoff, limit=10) == 1
    assert set(store.runs) == {ids[2], ids[3]}
    assert await store.find_run_by_key(workflow.id, "k40") is None
    # One run on request: a finished one goes, a running one stays
    with pytest.raises(RunNotFinishedError):
        await store.delete_run(ids[3])
    await store.delete_run(ids[2])
    assert set(store.runs) == {ids[3]}
    with pytest.raises(RunNotFoundError):
        await store.delete_run(ids[2])
