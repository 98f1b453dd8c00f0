"""The floor: the suite's DAG shapes run by a bare anyio scheduler in the bench process, each
node one INSERT (started) and one UPDATE (finished) through asyncpg on the same embedded
PostgreSQL as weft (its own database). weft's figures are shown as ratios to these."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg

from bench import graphs
from runner.store.queries import parse_queries

# The floor's statements, from bench/sql/floor.sql (named like weft's own).
SQL = parse_queries((Path(__file__).parent / "sql" / "floor.sql").read_text(), "floor.sql")
FLOOR_DATABASE = "weft_bench_floor"
CREATE_TABLE = SQL["create_table"]
INSERT_STARTED = SQL["insert_started"]
UPDATE_FINISHED = SQL["update_finished"]

# As many connections as weft's default pool (WEFT_DB_POOL_SIZE).
POOL_SIZE = 10


@dataclass(frozen=True)
class FloorResult:
    """Median-able samples of the three floor figures."""

    chain100_ms: list[float]
    fanout100_ms: list[float]
    sleepy_fanout_ms: list[float]
    skewed_branches_ms: list[float]
    runs_per_s: list[float]


async def ensure_database(admin_url: str) -> None:
    """Create the floor's database on the server of `admin_url` unless it exists."""
    admin = await asyncpg.connect(admin_url)
    try:
        exists = await admin.fetchval(SQL["database_exists"], FLOOR_DATABASE)
        if not exists:
            await admin.execute(SQL["create_database"])
    finally:
        await admin.close()


async def run_dag(
    pool: asyncpg.Pool,
    run_id: int,
    parents: dict[str, list[str]],
    delays: dict[str, float] | None = None,
) -> None:
    """Run one DAG: every node starts as soon as its last parent has finished; a node of
    `delays` sleeps that long between its two statements."""
    delays = delays or {}
    children: dict[str, list[str]] = {node: [] for node in parents}
    for node, ups in parents.items():
        for up in ups:
            children[up].append(node)
    waiting = {node: len(ups) for node, ups in parents.items()}

    async with anyio.create_task_group() as tg:

        async def execute(node: str) -> None:
            row_id = await pool.fetchval(INSERT_STARTED, run_id, node)
            if node in delays:
                await anyio.sleep(delays[node])
            await pool.execute(UPDATE_FINISHED, row_id)
            for child in children[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    tg.start_soon(execute, child)

        for node, count in waiting.items():
            if count == 0:
                tg.start_soon(execute, node)


class Floor:
    """The floor scheduler on one pool; run ids count up from 1."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._next_run = 0

    def _run_id(self) -> int:
        self._next_run += 1
        return self._next_run

    async def one(self, graph: graphs.Graph) -> float:
        """Seconds to run one DAG."""
        parents, delays = graphs.parents_of(graph), graphs.delays_of(graph)
        started = time.perf_counter()
        await run_dag(self.pool, self._run_id(), parents, delays)
        return time.perf_counter() - started

    async def many(self, parents: dict[str, list[str]], count: int) -> float:
        """Seconds to run `count` DAGs started at once."""
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(run_dag, self.pool, self._run_id(), parents)
        return time.perf_counter() - started


async def measure_floor(
    database_url: Callable[[str], str],
    repetitions: int,
    concurrent_runs: int,
    progress: Callable[[str], None],
) -> FloorResult:
    """chain100, fanout100, sleepy-fanout, skewed-branches (ms) and `concurrent_runs`
    3-node chains (runs/s) on the floor; one untimed warm-up of each, then `repetitions`
    timed ones."""
    await ensure_database(database_url("postgres"))
    pool = await asyncpg.create_pool(
        database_url(FLOOR_DATABASE), min_size=POOL_SIZE, max_size=POOL_SIZE
    )
    try:
        await pool.execute(CREATE_TABLE)
        floor = Floor(pool)
        shapes = {
            "chain100": graphs.chain(100),
            "fanout100": graphs.fanout(100),
            "sleepy-fanout": graphs.SLEEPY_FANOUT,
            "skewed-branches": graphs.SKEWED_BRANCHES,
        }
        short = graphs.parents_of(graphs.short_chain(2))
        for graph in shapes.values():
            await floor.one(graph)
        await floor.many(short, concurrent_runs)
        totals: dict[str, list[float]] = {name: [] for name in shapes}
        rates = []
        for i in range(repetitions):
            for name, graph in shapes.items():
                totals[name].append(await floor.one(graph) * 1000)
            rates.append(concurrent_runs / await floor.many(short, concurrent_runs))
            progress(
                f"floor {i + 1}/{repetitions}: "
                + ", ".join(f"{name} {ms[-1]:.1f} ms" for name, ms in totals.items())
                + f", {rates[-1]:.0f} runs/s"
            )
        return FloorResult(
            totals["chain100"],
            totals["fanout100"],
            totals["sleepy-fanout"],
            totals["skewed-branches"],
            rates,
        )
    finally:
        await pool.close()


async def server_version(admin_url: str) -> str:
    """The PostgreSQL server's version string (e.g. "16.2")."""
    conn = await asyncpg.connect(admin_url)
    try:
        return str(await conn.fetchval(SQL["server_version"]))
    finally:
        await conn.close()
