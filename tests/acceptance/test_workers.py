"""`WEB_CONCURRENCY=2 weft serve`: two worker processes on one port, as a dyno runs them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import asyncpg
import httpx
import psutil
import pytest

from tests.acceptance.test_cli import free_port, run_a_workflow, weft_process

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def worker_pids(url: str, tries: int = 40) -> set[int]:
    """The pids that answer /healthz, each call on a new connection."""
    pids = set()
    for _ in range(tries):
        response = httpx.get(f"{url}/healthz", timeout=10)
        assert response.status_code == 200
        pids.add(response.json()["pid"])
    return pids


def start_slow_run(url: str) -> str:
    """A run whose one node takes 1 s, once that node has started."""
    graph = {
        "nodes": [{"id": "s", "type": "start"}, {"id": "d", "type": "delay",
                                                  "params": {"seconds": 1}}],
        "edges": [{"id": "e", "from": "s", "to": "d"}],
    }  # fmt: skip
    created = httpx.post(f"{url}/workflows", json={"name": "slow", "graph": graph}, timeout=10)
    workflow_id = created.json()["id"]
    run_id: str = httpx.post(f"{url}/workflows/{workflow_id}/run", json={}).json()["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        nodes = httpx.get(f"{url}/runs/{run_id}/nodes", timeout=10).json()["items"]
        if any(n["node_id"] == "d" and n["status"] == "running" for n in nodes):
            return run_id
        time.sleep(0.02)
    raise AssertionError("the slow node did not start")


async def run_status(database_url: str, run_id: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        status: str = await conn.fetchval("SELECT status FROM runs WHERE id = $1::uuid", run_id)
    finally:
        await conn.close()
    return status


def wait_healthy(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("weft did not answer")


@pytest.mark.anyio
async def test_two_workers_serve_one_port_are_replaced_and_stop_on_sigterm(
    tmp_path: Path, database_url: str
) -> None:
    await anyio.to_thread.run_sync(two_workers, tmp_path, database_url)


def two_workers(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": "2",
        "PORT": str(port),
        "WEFT_HOST": "127.0.0.1",
        "WEFT_DATA_DIR": str(tmp_path / "data"),
        "WEFT_SHUTDOWN_GRACE": "5",
    }
    with weft_process(["serve"], env, tmp_path) as main:
        wait_healthy(url)
        # Both workers answer (the kernel hands each new connection to one of them)
        deadline = time.monotonic() + 20
        pids = worker_pids(url)
        while len(pids) < 2 and time.monotonic() < deadline:
            pids |= worker_pids(url)
        children = {p.pid for p in psutil.Process(main.pid).children()}
        assert pids == children
        assert len(children) == 2
        run_a_workflow(url)

        # A worker that dies is replaced
        victim = min(children)
        psutil.Process(victim).kill()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = {p.pid for p in psutil.Process(main.pid).children()}
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2
        assert victim not in now
        deadline = time.monotonic() + 20
        while (answered := worker_pids(url, 10)) != now and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answered == now  # the new worker serves too
        run_a_workflow(url)

        # A run in flight when the dyno is told to stop: Heroku sends SIGTERM to every
        # process, and the main process passes it on too; the workers drain all the same
        run_id = start_slow_run(url)
        workers = [psutil.Process(pid) for pid in now]
        main.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        output, _ = main.communicate(timeout=30)
        assert anyio.from_thread.run(run_status, database_url, run_id) == "succeeded"
        assert main.returncode == 0, output
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
        assert '"event": "worker_died"' in output
        assert output.count('"event": "shutting_down"') >= 2, output  # each worker drained
