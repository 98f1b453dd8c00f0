"""Migrations on an empty database, and every named query prepared against the result."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import anyio
import asyncpg
import pytest

from runner.store.db import WRITER_SETTINGS, Database
from runner.store.migrate import apply_migrations, discover
from runner.store.queries import load_queries

pytestmark = pytest.mark.anyio


@pytest.fixture
async def empty_database(pg_server: Any) -> AsyncIterator[str]:
    admin = await asyncpg.connect(pg_server.get_uri("postgres"))
    try:
        await admin.execute("DROP DATABASE IF EXISTS weft_empty WITH (FORCE)")
        await admin.execute("CREATE DATABASE weft_empty")
        yield pg_server.get_uri("weft_empty")
        await admin.execute("DROP DATABASE weft_empty WITH (FORCE)")
    finally:
        await admin.close()


async def test_migrations_apply_once_and_every_query_prepares(empty_database: str) -> None:
    db = await Database.connect(empty_database, min_size=1, max_size=2)
    try:
        # When the migrations are applied to an empty database
        applied = await apply_migrations(db)
        assert applied == [m.version for m in discover()]
        assert applied[0] == "0001"
        # Then a second pass applies nothing
        assert await apply_migrations(db) == []

        # And every named query prepares against the schema
        queries = load_queries()
        assert len(queries) >= 20
        async with db.connection() as conn:
            for name in queries:
                await conn.prepare(name)
    finally:
        await db.close()


async def test_concurrent_migrators_apply_each_migration_once(empty_database: str) -> None:
    dbs = [await Database.connect(empty_database, min_size=1, max_size=1) for _ in range(3)]
    results: list[list[str]] = []
    try:

        async def migrate(db: Database) -> None:
            results.append(await apply_migrations(db))

        async with anyio.create_task_group() as tg:
            for db in dbs:
                tg.start_soon(migrate, db)
        flat = [v for r in results for v in r]
        assert sorted(flat) == [m.version for m in discover()]
        count = await dbs[0].fetch_val("count_workflows", None, None)
        assert count == 0
    finally:
        for db in dbs:
            await db.close()


WRITER_STATEMENTS = ("write_batch", "write_node_ends", "write_node_end")


async def test_the_writers_statements_find_rows_by_key(database_url: str) -> None:
    """The writer's plans are made once per connection (generic): they must look each row
    up by its key, never scan a table (which would grow with every run)."""
    queries = load_queries()
    conn = await asyncpg.connect(database_url, server_settings=WRITER_SETTINGS)
    try:
        for name in WRITER_STATEMENTS:
            parameters = max(int(n) for n in re.findall(r"\$(\d+)", queries[name]))
            await conn.execute(f"PREPARE {name} AS {queries[name]}")
            nulls = ", ".join(["NULL"] * parameters)
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {name}({nulls})"))
            assert "Seq Scan" not in plan, plan
            assert "runs_unfinished" not in plan, plan
            assert "Index Scan" in plan, plan
    finally:
        await conn.close()


# A history in which every filter is selective: 5000 runs of 5 workflows (500 workflows in
# all), one in a hundred failed, one in a hundred from a webhook, one in a hundred started
# by a parent run, one second apart; one workflow in fifty tagged "rare".
SEARCH_HISTORY = """
INSERT INTO workflows (id, name, webhook_slug, graph, tags, updated_at)
SELECT gen_random_uuid(), 'workflow ' || i, 'w' || i, '{}',
       CASE WHEN i % 50 = 0 THEN ARRAY['rare'] ELSE ARRAY['common'] END,
       now() - make_interval(secs => i)
FROM generate_series(1, 500) AS i;
INSERT INTO runs (id, workflow_id, status, trigger_type, graph, created_at, parent_run_id)
SELECT gen_random_uuid(), w.ids[1 + i % 5],
       CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN i % 100 = 1 THEN 'webhook' ELSE 'manual' END,
       '{}', now() - make_interval(secs => i),
       CASE WHEN i % 100 = 2 THEN '00000000-0000-0000-0000-00000000000a'::uuid END
FROM generate_series(1, 5000) AS i,
     (SELECT array_agg(id ORDER BY name) AS ids
      FROM (SELECT id, name FROM workflows ORDER BY name LIMIT 5) AS five) AS w;
ANALYZE workflows;
ANALYZE runs;
"""
PARENT = UUID("00000000-0000-0000-0000-00000000000a")
RUN_FILTERS = ("status", "trigger_type", "since", "until", "parent_run_id")


def run_filters(**given: Any) -> list[Any]:
    """list_runs' filter parameters, in order, with those given set."""
    return [given.get(name) for name in RUN_FILTERS]


async def test_each_search_filter_is_served_by_its_index(database_url: str) -> None:
    """GET /runs, GET /workflows/{id}/runs and GET /workflows find what each filter asks
    for through an index, in a history where the filter is selective. Their parameters
    are bound as asyncpg binds them, so a filter left null folds away (a custom plan)."""
    queries = load_queries()
    conn = await asyncpg.connect(database_url, server_settings={"enable_seqscan": "off"})
    try:
        await conn.execute(SEARCH_HISTORY)
        workflow = await conn.fetchval("SELECT id FROM workflows ORDER BY name LIMIT 1")
        cursor = await conn.fetchval("SELECT id FROM runs WHERE status = 'failed' LIMIT 1")
        minute_ago = datetime.now(UTC) - timedelta(minutes=1)
        early = datetime.now(UTC) - timedelta(seconds=4900)
        cases: list[tuple[str, list[Any], str]] = [
            ("list_runs", [50, None, *run_filters()], "runs_newest"),
            ("list_runs", [50, None, *run_filters(status=["failed"])], "runs_status_newest"),
            ("list_runs", [50, None, *run_filters(status=["failed", "cancelled"])],
             "runs_status_newest"),
            ("list_runs", [50, cursor, *run_filters(status=["failed"])], "runs_status_newest"),
            ("list_runs", [50, None, *run_filters(trigger_type=["webhook"])],
             "runs_trigger_newest"),
            ("list_runs", [50, None, *run_filters(since=minute_ago)], "runs_newest"),
            ("list_runs", [50, None, *run_filters(until=early)], "runs_newest"),
            ("list_runs", [50, None, *run_filters(parent_run_id=PARENT)], "runs_children"),
            ("list_workflow_runs", [workflow, 50, None, *run_filters()], "runs_workflow_newest"),
            ("list_workflow_runs", [workflow, 50, None, *run_filters(status=["failed"])],
             "runs_workflow_status_newest"),
            # No index of a workflow's runs by trigger: here the trigger is the rarer.
            ("list_workflow_runs", [workflow, 50, None, *run_filters(trigger_type=["webhook"])],
             "runs_trigger_newest"),
            ("list_workflow_runs", [workflow, 50, None, *run_filters(since=minute_ago)],
             "runs_workflow_newest"),
            ("list_workflow_runs", [workflow, 50, None, *run_filters(until=early)],
             "runs_workflow_newest"),
            ("list_workflow_runs", [workflow, 50, None, *run_filters(parent_run_id=PARENT)],
             "runs_children"),
            ("list_workflows", [50, 0, None, None], "workflows_newest"),
            # A substring uses no index: the list walks its order and stops at a full page.
            ("list_workflows", [50, 0, "workflow 1", None], "workflows_newest"),
            ("list_workflows", [50, 0, None, "rare"], "workflows_tags"),
            ("count_workflows", [None, "rare"], "workflows_tags"),
        ]  # fmt: skip
        for name, args, index in cases:
            rows = await conn.fetch(f"EXPLAIN {queries[name]}", *args)
            plan = "\n".join(r[0] for r in rows)
            assert f" {index} " in plan + " ", f"{name} {args}:\n{plan}"
            assert "Seq Scan" not in plan, f"{name} {args}:\n{plan}"
    finally:
        await conn.close()
