"""Forward-only migrations: sql/migrations/NNNN_name.sql applied once each, under a lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from runner.store.db import Database
from runner.store.queries import MIGRATIONS_DIR

log = structlog.get_logger(__name__)

_FILENAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path


class MigrationFileError(ValueError):
    """A migration file is misnamed or its version is repeated."""


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in version order."""
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationFileError(f"{path.name}: migration files are named NNNN_name.sql")
        version = match.group("version")
        if version in migrations:
            raise MigrationFileError(f"{path.name}: version {version} is used twice")
        migrations[version] = Migration(version, match.group("name"), path)
    return [migrations[v] for v in sorted(migrations)]


async def apply_migrations(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded; returns the versions applied.

    A session advisory lock makes concurrent migrators (several dynos) wait for each other;
    each file runs in its own transaction together with its schema_migrations row.
    """
    applied_now: list[str] = []
    async with db.connection() as conn:
        await conn.execute("lock_migrations")
        try:
            await conn.execute("create_schema_migrations")
            done = {r["version"] for r in await conn.fetch_all("applied_migrations")}
            for migration in discover(directory):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute_script(migration.path.read_text())
                    await conn.execute("record_migration", migration.version, migration.name)
                applied_now.append(migration.version)
                log.info("migration_applied", version=migration.version, name=migration.name)
        finally:
            await conn.execute("unlock_migrations")
    return applied_now
