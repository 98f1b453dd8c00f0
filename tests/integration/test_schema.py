"""Migrations on an empty database, and every named query prepared against the result."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

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
        count = await dbs[0].fetch_val("count_workflows")
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
