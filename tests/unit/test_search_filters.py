"""Search filters without a database: the query strings as parsed (web/filters.py), the
filters' matching (runner/models.py) and the MemoryStore's lists, which must answer as
PostgreSQL's statements do (tests/integration/test_search.py checks those)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from runner.models import Lineage, RunFilter, RunStatus, WorkflowFilter
from runner.runtime.workflows import copy_name
from runner.store.memory import MemoryStore
from web.filters import RunsPage, WorkflowsPage
from web.schemas import WorkflowIn

OWNER = uuid4()
GRAPH: dict[str, Any] = {"nodes": [{"id": "s", "type": "start"}], "edges": []}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("failed", ("failed",)),
        (["failed", "cancelled"], ("failed", "cancelled")),
        ("failed,cancelled", ("failed", "cancelled")),
        (["running", "failed, cancelled"], ("running", "failed", "cancelled")),
    ],
)
def test_status_is_one_or_several_repeated_or_comma_separated(
    status: str | list[str], expected: tuple[str, ...]
) -> None:
    assert RunsPage.model_validate({"status": status}).filters().statuses == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "failed,"}, "status"),
        ({"trigger_type": "cron"}, "trigger_type"),
        ({"since": "2024-05-01T12:00:00"}, "since"),
        ({"since": "2024-05-01"}, "since"),
        ({"until": "1714564800"}, "until"),
        ({"until": "0001-01-01T00:00:00+01:00"}, "until"),
        ({"parent_run_id": "x"}, "parent_run_id"),
        ({"sort": "name"}, "sort"),
    ],
)
def test_bad_run_filters_name_their_field(query: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RunsPage.model_validate(query)
    assert [e["loc"][0] for e in caught.value.errors()] == [field]


def test_times_are_read_in_any_zone_and_kept_in_utc() -> None:
    page = RunsPage.model_validate(
        {"since": "2024-05-01T12:00:00Z", "until": "2024-05-01T12:00:00+02:00"}
    )
    assert page.since == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert page.until == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_tags_are_deduplicated_in_order_after_their_count_is_checked() -> None:
    body = {"name": "w", "tags": ["b", "a", "b", "team:data", "a"]}
    assert WorkflowIn.model_validate(body).tags == ["b", "a", "team:data"]
    with pytest.raises(ValidationError):
        WorkflowIn.model_validate({"name": "w", "tags": ["a"] * 21})


def test_workflow_search_parameters() -> None:
    assert WorkflowsPage.model_validate({"q": "50%_", "tag": "v1.2/beta"}).filters() == (
        WorkflowFilter(q="50%_", tag="v1.2/beta")
    )
    for bad in ({"tag": "no!"}, {"tag": "trailing "}, {"q": "a\x00"}):
        with pytest.raises(ValidationError):
            WorkflowsPage.model_validate(bad)


def test_a_copys_name_stays_a_valid_name() -> None:
    assert copy_name("Nightly") == "Nightly (copy)"
    assert copy_name("n" * 200) == "n" * 193 + " (copy)"


async def seeded() -> tuple[MemoryStore, list[Any]]:
    """A MemoryStore with a workflow and four runs, one second apart, newest last."""
    store = MemoryStore()
    workflow = await store.create_workflow(
        workflow_id=uuid4(), name="W", webhook_slug="w", webhook_secret=None, graph=GRAPH
    )
    start = datetime(2024, 5, 1, tzinfo=UTC)
    parent = uuid4()
    kinds = [("succeeded", "manual"), ("failed", "webhook"), ("failed", "workflow"),
             ("cancelled", "manual")]  # fmt: skip
    runs = []
    for i, (status, trigger) in enumerate(kinds):
        run, _ = await store.insert_run(
            run_id=uuid4(),
            workflow_id=workflow.id,
            trigger_type=trigger,
            trigger_payload={},
            lease_owner=OWNER,
            lease_s=30,
            lineage=Lineage(parent_run_id=parent) if trigger == "workflow" else Lineage(),
        )
        stored = dataclasses.replace(
            store.runs[run.id], status=RunStatus(status), created_at=start + timedelta(seconds=i)
        )
        store.runs[run.id] = stored
        runs.append(stored)
    return store, runs


@pytest.mark.anyio
async def test_the_memory_store_filters_and_pages_runs_as_sql_does() -> None:
    store, runs = await seeded()
    ok, webhook, child, cancelled = runs

    async def listed(filters: RunFilter, before: Any = None, limit: int = 10) -> list[Any]:
        return [r.id for r in await store.list_runs(limit=limit, before=before, filters=filters)]

    failed = (RunStatus.FAILED, RunStatus.CANCELLED)
    assert await listed(RunFilter(statuses=failed)) == [cancelled.id, child.id, webhook.id]
    assert await listed(RunFilter(statuses=failed), limit=2) == [cancelled.id, child.id]
    assert await listed(RunFilter(statuses=failed), before=child.id) == [webhook.id]
    assert await listed(RunFilter(trigger_types=("webhook",))) == [webhook.id]
    parent = child.lineage.parent_run_id
    assert await listed(RunFilter(parent_run_id=parent)) == [child.id]
    # since inclusive, until exclusive
    window = RunFilter(since=webhook.created_at, until=cancelled.created_at)
    assert await listed(window) == [child.id, webhook.id]
    assert await listed(RunFilter(until=ok.created_at)) == []
    # An unknown cursor ends the list, as the SQL's comparison with nothing does
    assert await listed(RunFilter(), before=uuid4()) == []


@pytest.mark.anyio
async def test_the_memory_store_finds_workflows_as_sql_does() -> None:
    store = MemoryStore()
    named = [("Daily report", ("reports",)), ("100% done_ok", ("misc",)),
             ("100x done-ok", ("misc", "reports"))]  # fmt: skip
    for i, (name, tags) in enumerate(named):
        await store.create_workflow(
            workflow_id=uuid4(), name=name, webhook_slug=f"w{i}", webhook_secret=None,
            graph=GRAPH, tags=tags,
        )  # fmt: skip

    async def found(**filters: Any) -> tuple[list[str], int]:
        page, total = await store.list_workflows(
            limit=1, offset=0, filters=WorkflowFilter(**filters)
        )
        return [w.name for w in page], total

    assert await found(q="REPORT") == (["Daily report"], 1)
    assert await found(q="%") == (["100% done_ok"], 1)
    assert await found(q="_") == (["100% done_ok"], 1)
    assert await found(tag="reports") == (["100x done-ok"], 2)
    assert await found(tag="report") == ([], 0)
