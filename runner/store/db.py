"""The one place that talks to PostgreSQL: an asyncpg pool and the named queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
import asyncpg
import orjson
import structlog
from asyncpg.pool import PoolConnectionProxy

from runner.errors import DatabaseError, DatabaseUnavailableError
from runner.store.queries import load_queries

Record = asyncpg.Record
log = structlog.get_logger(__name__)


class RawJson(str):
    """JSON text encoded already: sent to a json/jsonb parameter as it is."""

    __slots__ = ()


def encode_json(value: Any) -> str:
    """JSON text as weft stores it (the json/jsonb codec; also for arrays of JSON)."""
    if type(value) is RawJson:
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _keep_connection(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is.

    asyncpg's default reset costs a round trip on every release (RESET ALL, UNLISTEN, ...);
    weft sets no session state, and what takes a session lock (migrations) releases it.
    """


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=encode_json, decoder=orjson.loads, schema="pg_catalog"
        )


# Errors that mean "the database is not reachable right now", not "this query is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out while connecting
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
    # A connection the server dropped mid-operation (a restart) can be left in a state it
    # cannot go on from ("cannot switch to state …"): as good as lost, and reconnected.
    asyncpg.exceptions.InternalClientError,
)
# The writer's statements join arrays to tables by key. Planned once per connection (a
# custom plan per batch cost ~0.4 ms of a ~1 ms commit), without sequential scans: a generic
# plan made while a table is small would otherwise keep scanning it as it grows.
WRITER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}


@contextmanager
def as_weft_errors() -> Iterator[None]:
    """The driver's errors as the runner's, around connecting and migrating: unreachable →
    DatabaseUnavailableError, any other refusal → DatabaseError. (Queries map unreachable
    to DatabaseUnavailableError themselves; the store maps the refusals it expects.)"""
    try:
        yield
    except TRANSIENT_ERRORS as exc:
        raise DatabaseUnavailableError(f"the database is not reachable: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"database error: {exc}") from exc


RETRY_FIRST_DELAY_S = 0.05
RETRY_MAX_DELAY_S = 2.0

T = TypeVar("T")


class Database:
    """A pool plus named queries; the verbs say what comes back.

    A retrying Database (see `retrying`) waits out database outages: each call is repeated,
    with capped exponential backoff, until the database answers again.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: dict[str, str],
        *,
        retry: bool = False,
        dsn: str | None = None,
    ) -> None:
        self._pool = pool
        self.queries = queries
        self._retry = retry
        self._dsn = dsn

    def retrying(self) -> Database:
        """The same pool and queries, waiting out outages instead of failing."""
        return Database(self._pool, self.queries, retry=True, dsn=self._dsn)

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        delay = RETRY_FIRST_DELAY_S
        while True:
            try:
                return await fn(*args)
            except TRANSIENT_ERRORS as exc:
                if not self._retry:
                    raise DatabaseUnavailableError() from exc
                log.warning("database_unavailable_retrying", error=repr(exc), delay_s=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_connection,
        )
        return cls(pool, load_queries(), dsn=dsn)

    async def dedicated(self, **settings: str) -> Connection:
        """A connection of its own, outside the pool (for a writer that must never queue
        behind request traffic for a pooled connection), with the writer's settings and
        `settings`; the caller closes it."""
        assert self._dsn is not None, "a Database from Database.connect"
        conn = await asyncpg.connect(self._dsn, server_settings={**WRITER_SETTINGS, **settings})
        await _init_connection(conn)
        return Connection(conn, self.queries)

    async def close(self) -> None:
        await self._pool.close()

    def _sql(self, name: str) -> str:
        return self.queries[name]

    async def execute(self, name: str, *args: Any) -> str:
        return await self._call(self._pool.execute, self._sql(name), *args)

    async def fetch_one(self, name: str, *args: Any) -> Record | None:
        return await self._call(self._pool.fetchrow, self._sql(name), *args)

    async def fetch_all(self, name: str, *args: Any) -> list[Record]:
        return await self._call(self._pool.fetch, self._sql(name), *args)

    async def fetch_val(self, name: str, *args: Any) -> Any:
        return await self._call(self._pool.fetchval, self._sql(name), *args)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One connection (for a transaction or a session-level lock)."""
        with as_weft_errors():
            conn = await self._pool.acquire()
        try:
            yield Connection(conn, self.queries)
        finally:
            await self._pool.release(conn)


class Connection:
    """A single pooled connection with the same verbs, plus transactions."""

    def __init__(
        self, conn: asyncpg.Connection | PoolConnectionProxy[Record], queries: dict[str, str]
    ) -> None:
        self._conn = conn
        self._queries = queries

    def transaction(self, **options: Any) -> Any:
        """A transaction (asyncpg's options: isolation, readonly, deferrable)."""
        return self._conn.transaction(**options)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._conn.execute(self._queries[name], *args)

    async def execute_script(self, script: str) -> None:
        """Run a whole SQL file (a migration); never built from strings."""
        await self._conn.execute(script)

    async def fetch_one(self, name: str, *args: Any) -> Record | None:
        return await self._conn.fetchrow(self._queries[name], *args)

    async def fetch_all(self, name: str, *args: Any) -> list[Record]:
        return await self._conn.fetch(self._queries[name], *args)

    async def fetch_val(self, name: str, *args: Any) -> Any:
        return await self._conn.fetchval(self._queries[name], *args)

    async def close(self) -> None:
        if isinstance(self._conn, asyncpg.Connection):
            await self._conn.close()

    def is_closed(self) -> bool:
        return self._conn.is_closed()

    async def prepare(self, name: str) -> None:
        """Prepare a named query (used to check the queries against the schema)."""
        await self._conn.prepare(self._queries[name])
