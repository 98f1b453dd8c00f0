"""Nothing is lost: a real `weft serve` killed with SIGKILL or stopped with SIGTERM in the
middle of runs, and PostgreSQL restarted under running work."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import asyncpg
import httpx
import pytest

from runner.store.db import Database
from runner.store.embedded import start_embedded_sync
from runner.store.migrate import apply_migrations
from tests.acceptance.test_cli import free_port
from tests.support import Hits, json_response, read_body, run_weft_server, serve_asgi, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::ResourceWarning")]

RUNS = 12


@pytest.fixture
async def counter() -> AsyncIterator[tuple[str, Hits]]:
    """A local HTTP server counting hits per path: the proof of what was executed."""
    hits = Hits()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        hits.add(scope["path"])
        await json_response(send, 200, b'{"ok": true}')

    async with serve_asgi(app) as url:
        yield url, hits


def counted_chain(counter_url: str, pause_s: float) -> dict[str, Any]:
    """start → a → wait → b → wait2 → c, where a, b and c hit the counter once each."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    for name, pause in (("a", "p1"), ("b", "p2"), ("c", None)):
        nodes.append(
            {
                "id": name,
                "type": "http.request",
                "params": {"url": f"{counter_url}/hit/{{{{ trigger.i }}}}/{name}"},
            }
        )
        if pause:
            nodes.append({"id": pause, "type": "delay", "params": {"seconds": pause_s}})
    edges = [
        {"id": f"e{i}", "from": x["id"], "to": y["id"]}
        for i, (x, y) in enumerate(itertools.pairwise(nodes))
    ]
    return {"nodes": nodes, "edges": edges}


class WeftProcess:
    """`weft serve` as a real process on a free port."""

    def __init__(self, env: dict[str, str], tmp_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Its workflows call a counter on loopback, which `weft serve` refuses by default.
        self.env = {
            **os.environ,
            "WEFT_HTTP_DENY_PRIVATE": "false",
            **env,
            "PORT": str(self.port),
            "WEFT_HOST": "127.0.0.1",
        }
        self.tmp_path = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        log = open(self.tmp_path / f"weft-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve"],
            env=self.env,
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        process = self.process

        async def healthy() -> bool:
            assert process.poll() is None, "weft exited during start"
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(healthy, timeout_s=30, poll_s=0.05)

    def stop_now(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def processes() -> Iterator[list[WeftProcess]]:
    started: list[WeftProcess] = []
    yield started
    for process in started:
        process.stop_now()


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def start_runs(url: str, graph: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        created = await client.post("/workflows", json={"name": "crash", "graph": graph})
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        run_ids = []
        for i in range(RUNS):
            response = await client.post(
                f"/workflows/{workflow_id}/run", json={"start_input": {"i": i}}
            )
            assert response.status_code == 202
            run_ids.append(response.json()["id"])
        return run_ids


async def wait_all_finished(
    url: str, run_ids: list[str], timeout_s: float = 60
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def all_finished() -> bool:
            runs[:] = [(await client.get(f"/runs/{r}")).json() for r in run_ids]
            return all(r["status"] in ("succeeded", "failed", "cancelled") for r in runs)

        await wait_until(all_finished, timeout_s=timeout_s, poll_s=0.1)
    return runs


async def start_counted_runs(
    env: dict[str, str],
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
    pause_s: float,
) -> tuple[WeftProcess, list[str]]:
    """A `weft serve` running RUNS counted chains, returned once every run has done "a"."""
    counter_url, hits = counter
    process = WeftProcess(env, tmp_path)
    processes.append(process)
    await process.start()
    run_ids = await start_runs(process.url, counted_chain(counter_url, pause_s=pause_s))
    await hits.wait_for(lambda counts: sum(p.endswith("/a") for p in counts) >= RUNS, 30)
    return process, run_ids


async def committed_nodes(database_url: str) -> set[tuple[int, str]]:
    rows = await fetch(
        database_url,
        "SELECT (r.trigger_payload->>'i')::int AS i, n.node_id FROM node_runs n "
        "JOIN runs r ON r.id = n.run_id WHERE n.status = 'succeeded'",
    )
    return {(r["i"], r["node_id"]) for r in rows}


def assert_every_node_ran_committed_ones_once(
    runs: list[dict[str, Any]], hits: Hits, committed: set[tuple[int, str]]
) -> None:
    """Every run succeeded, every counted node ran, and no committed node ran again."""
    assert [r["status"] for r in runs] == ["succeeded"] * RUNS
    for i in range(RUNS):
        for node in ("a", "b", "c"):
            count = hits[f"/hit/{i}/{node}"]
            assert count >= 1, (i, node)
            if (i, node) in committed:
                assert count == 1, f"node {node} of run {i} ran {count} times after its commit"


async def test_kill_9_mid_run_resumes_without_re_running_committed_nodes(
    database_url: str,
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
) -> None:
    _, hits = counter
    env = {"DATABASE_URL": database_url, "WEFT_LEASE_S": "1", "WEFT_DATA_DIR": str(tmp_path)}
    # When the process is killed once work is under way (every run has done "a")
    first, run_ids = await start_counted_runs(env, tmp_path, counter, processes, pause_s=0.4)
    first.stop_now()
    committed = await committed_nodes(database_url)
    unfinished = await fetch(database_url, "SELECT id FROM runs WHERE status = 'running'")
    assert unfinished, "the kill came too late to test anything"

    # And weft starts again
    second = WeftProcess(env, tmp_path)
    processes.append(second)
    await second.start()
    runs = await wait_all_finished(second.url, run_ids)

    # Then every run succeeded, every node ran, and no committed node ran again
    assert_every_node_ran_committed_ones_once(runs, hits, committed)
    assert {node for _, node in committed} & {"a", "b", "c"}, "no counted node was committed"


async def test_a_restarted_instance_takes_back_its_runs_at_once(
    database_url: str,
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
) -> None:
    # Given leases far longer than the test, and a process killed mid-run
    env = {"DATABASE_URL": database_url, "WEFT_LEASE_S": "600", "WEFT_DATA_DIR": str(tmp_path)}
    first, run_ids = await start_counted_runs(env, tmp_path, counter, processes, pause_s=0.4)
    first.stop_now()

    # When the same instance (same host and port) starts again
    second = WeftProcess(env, tmp_path, port=first.port)
    processes.append(second)
    await second.start()

    # Then it resumes its runs without waiting for their leases to lapse
    runs = await wait_all_finished(second.url, run_ids, timeout_s=30)
    assert [r["status"] for r in runs] == ["succeeded"] * RUNS


async def test_sigterm_drains_then_a_restart_finishes_every_run(
    database_url: str,
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
) -> None:
    _, hits = counter
    grace = 1.0
    env = {
        "DATABASE_URL": database_url,
        "WEFT_SHUTDOWN_GRACE": str(grace),
        "WEFT_DATA_DIR": str(tmp_path),
    }
    first, run_ids = await start_counted_runs(env, tmp_path, counter, processes, pause_s=0.6)

    # When it is asked to stop
    assert first.process is not None
    stopped_at = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    exit_code = await anyio.to_thread.run_sync(lambda: first.process.wait(grace + 10))
    elapsed = time.monotonic() - stopped_at

    # Then it exits cleanly within the grace period (plus the HTTP close), failing nothing
    assert exit_code == 0
    assert elapsed < grace + 5, elapsed
    statuses = await fetch(database_url, "SELECT status FROM node_runs")
    assert "failed" not in {r["status"] for r in statuses}
    assert "cancelled" not in {r["status"] for r in statuses}
    left = await fetch(
        database_url, "SELECT lease_owner FROM runs WHERE status IN ('pending', 'running')"
    )
    assert left, "every run finished before the signal: nothing was tested"
    assert {r["lease_owner"] for r in left} == {None}

    # And after a restart every run finishes
    second = WeftProcess(env, tmp_path)
    processes.append(second)
    await second.start()
    runs = await wait_all_finished(second.url, run_ids)
    assert [r["status"] for r in runs] == ["succeeded"] * RUNS
    for i in range(RUNS):
        assert hits[f"/hit/{i}/a"] == 1


@pytest.fixture
def own_pg_server() -> Iterator[Any]:
    """A PostgreSQL of this test's own, since the test restarts it."""
    folder = Path(tempfile.mkdtemp(prefix="weft-test-pg-restart-"))
    server, _url = start_embedded_sync(folder / "pgdata", cleanup="delete")
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


async def test_postgres_restart_under_running_work(own_pg_server: Any, tmp_path: Path) -> None:
    from pgserver._commands import pg_ctl

    url = own_pg_server.get_uri()
    db = await Database.connect(url, min_size=1, max_size=1)
    await apply_migrations(db)
    await db.close()
    graph = {
        "nodes": [{"id": f"d{i}", "type": "delay", "params": {"seconds": 0.15}} for i in range(6)],
        "edges": [{"id": f"e{i}", "from": f"d{i}", "to": f"d{i + 1}"} for i in range(5)],
    }
    async with run_weft_server(url, tmp_path) as weft:
        workflow = await weft.create_workflow(graph)
        run_ids = [
            (await weft.client.post(f"/workflows/{workflow['id']}/run")).json()["id"]
            for _ in range(8)
        ]
        # Once every run is under way (its first node's success committed)
        for run_id in run_ids:
            async with aclosing(weft.system.weft.run_messages(UUID(run_id), after=0)) as events:
                async for event in events:
                    if event is not None and event.type == "node.succeeded":
                        break

        # When PostgreSQL restarts under the running work
        await anyio.to_thread.run_sync(
            lambda: pg_ctl(
                ["-w", "-m", "fast", "restart"],
                pgdata=own_pg_server.pgdata,
                user=own_pg_server.system_user,
            )
        )

        # Then every run still finishes, none failed, nothing is missing
        for run_id in run_ids:
            run = await weft.wait(run_id)
            assert run["status"] == "succeeded", run
            nodes = await weft.nodes(run_id)
            assert {n["status"] for n in nodes.values()} == {"succeeded"}
            assert len(nodes) == 6


async def start_mode_runs(url: str, graph: dict[str, Any], durability: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        body = {"name": durability, "graph": graph, "durability": durability}
        created = await client.post("/workflows", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["durability"] == durability
        batch = {"runs": [{"start_input": {"i": i}} for i in range(RUNS)]}
        response = await client.post(f"/workflows/{created.json()['id']}/runs/batch", json=batch)
        assert response.status_code == 202, response.text
        return [r["id"] for r in response.json()["items"]]


@pytest.mark.parametrize("durability", ["async", "exit"])
async def test_each_durability_mode_under_kill_9(
    durability: str,
    database_url: str,
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
) -> None:
    counter_url, hits = counter
    env = {"DATABASE_URL": database_url, "WEFT_LEASE_S": "1", "WEFT_DATA_DIR": str(tmp_path)}
    first = WeftProcess(env, tmp_path)
    processes.append(first)
    await first.start()
    run_ids = await start_mode_runs(first.url, counted_chain(counter_url, 0.4), durability)
    await hits.wait_for(lambda counts: sum(p.endswith("/a") for p in counts) >= RUNS, 30)
    # Killed once every run has done "a" (and is pausing before "b")
    first.stop_now()
    committed = await committed_nodes(database_url)
    statuses = {r["status"] for r in await fetch(database_url, "SELECT status FROM runs")}
    if durability == "exit":
        # Nothing of a run is persisted before its end: it runs again from its start
        assert committed == set()
        assert statuses == {"pending"}
        assert await fetch(database_url, "SELECT 1 FROM run_events") == []

    second = WeftProcess(env, tmp_path)
    processes.append(second)
    await second.start()
    runs = await wait_all_finished(second.url, run_ids)

    assert_every_node_ran_committed_ones_once(runs, hits, committed)
    if durability == "exit":  # every run's "a" ran before the kill, and again from the start
        assert all(hits[f"/hit/{i}/a"] == 2 for i in range(RUNS))
    # Each run's log is whole: one run.started (the one that finished), seqs from 1
    for run_id in run_ids:
        rows = await fetch(
            database_url, "SELECT first_seq, seq FROM run_events WHERE run_id = $1::uuid "
            "ORDER BY seq", run_id,
        )  # fmt: skip
        assert rows[0]["first_seq"] == 1
        assert all(a["seq"] + 1 == b["first_seq"] for a, b in itertools.pairwise(rows))


async def test_kill_9_of_one_process_under_load_another_finishes_every_run(
    database_url: str,
    tmp_path: Path,
    counter: tuple[str, Hits],
    processes: list[WeftProcess],
) -> None:
    counter_url, hits = counter
    env = {"DATABASE_URL": database_url, "WEFT_LEASE_S": "1", "WEFT_DATA_DIR": str(tmp_path)}
    a, b = WeftProcess(env, tmp_path), WeftProcess(env, tmp_path)
    processes.extend((a, b))
    await a.start()
    await b.start()
    run_ids = await start_runs(a.url, counted_chain(counter_url, pause_s=0.4))  # run on A
    await hits.wait_for(lambda counts: sum(p.endswith("/a") for p in counts) >= RUNS, 30)
    a.stop_now()
    committed = await committed_nodes(database_url)
    killed_at = time.monotonic()

    # B, which was up all along, takes the runs over once their leases lapse
    runs = await wait_all_finished(b.url, run_ids, timeout_s=30)
    took = time.monotonic() - killed_at
    assert_every_node_ran_committed_ones_once(runs, hits, committed)
    assert took < 1 + 10  # WEFT_LEASE_S + a few seconds
