"""Shared fixtures: one embedded PostgreSQL per session, a fresh database per test, and a
real weft server (Runtime + Hypercorn on 127.0.0.1) per test that needs one."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from runner.store.db import Database
from runner.store.embedded import start_embedded_sync
from runner.store.migrate import apply_migrations
from tests.support import WeftServer, run_weft_server

TEMPLATE_DB = "weft_template"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The embedded PostgreSQL for the whole session (pgserver, as weft uses it).

    Its folder is our own, not pytest's: pytest deletes old base temp folders when a new
    session starts, which would pull the data out from under a concurrent session.
    """
    folder = Path(tempfile.mkdtemp(prefix="weft-test-pg-"))
    server, _url = start_embedded_sync(folder / "pgdata", cleanup="delete")
    # Durability is not under test here; this keeps CREATE DATABASE and commits fast.
    server.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;")
    server.psql("SELECT pg_reload_conf();")
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def _database_url(server: Any, name: str) -> str:
    return str(server.get_uri(name))


@pytest.fixture(scope="session")
def template_database(pg_server: Any) -> str:
    """A database with every migration applied, copied for each test."""

    async def build() -> None:
        admin = await asyncpg.connect(_database_url(pg_server, "postgres"))
        try:
            # Identifiers cannot be query parameters; these names are constants of the tests.
            await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await admin.close()
        db = await Database.connect(_database_url(pg_server, TEMPLATE_DB), min_size=1, max_size=1)
        try:
            await apply_migrations(db)
        finally:
            await db.close()

    anyio.run(build)
    return TEMPLATE_DB


@pytest.fixture
async def database_url(pg_server: Any, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_database_url(pg_server, "postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template_database}")
    finally:
        await admin.close()
    yield _database_url(pg_server, name)
    admin = await asyncpg.connect(_database_url(pg_server, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def weft(database_url: str, tmp_path: Path) -> AsyncIterator[WeftServer]:
    """A real weft server on 127.0.0.1 with its own database and data folder."""
    async with run_weft_server(database_url, tmp_path / "weft-data") as server:
        yield server
