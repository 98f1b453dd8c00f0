"""The Runtime's actors: one supervisor per workflow, lazily started, retired when idle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from runner.store.embedded import forget_dead_handles
from tests.support import run_weft_server, wait_until

pytestmark = pytest.mark.anyio

ONE_NODE = {"nodes": [{"id": "s", "type": "start"}], "edges": []}


async def test_supervisors_start_lazily_and_retire_when_idle(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path, weft_supervisor_idle_s=0.2) as weft:
        runtime = weft.system.runtime
        first = await weft.create_workflow(ONE_NODE)
        second = await weft.create_workflow(ONE_NODE)
        assert runtime.statistics().supervisors == 0

        # When many runs of two workflows are started at once
        run_ids: list[str] = []

        async def start(workflow_id: str) -> None:
            response = await weft.client.post(f"/workflows/{workflow_id}/run", json={})
            assert response.status_code == 202
            run_ids.append(response.json()["id"])

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(start, (first if i % 2 else second)["id"])
        assert runtime.statistics().supervisors == 2

        # Then they all succeed, and the idle supervisors retire
        for run_id in run_ids:
            assert (await weft.wait(run_id))["status"] == "succeeded"

        async def retired() -> bool:
            return runtime.statistics().supervisors == 0

        await wait_until(retired, timeout_s=5)

        # And a new run starts a new supervisor
        assert (await weft.run(first["id"]))["status"] == "succeeded"


async def test_health_reports_runs_in_flight(database_url: str, tmp_path: Path) -> None:
    async with run_weft_server(database_url, tmp_path) as weft:
        wf = await weft.create_workflow(
            {"nodes": [{"id": "d", "type": "delay", "params": {"seconds": 0.5}}], "edges": []}
        )
        started = (await weft.client.post(f"/workflows/{wf['id']}/run")).json()

        async def in_flight() -> bool:
            return bool((await weft.client.get("/healthz")).json()["runs_in_flight"] == 1)

        await wait_until(in_flight, timeout_s=5)
        # A run's start is written with the next batch (within 0.1 s), not awaited
        running: dict[str, Any] = {}

        async def stored_as_running() -> bool:
            running.update((await weft.client.get(f"/runs/{started['id']}")).json())
            return running["status"] == "running"

        await wait_until(stored_as_running, timeout_s=5)
        assert running["progress"] == 0
        assert running["duration_ms"] is not None
        assert running["outputs"] is None
        await weft.wait(started["id"])
        assert (await weft.client.get("/healthz")).json()["runs_in_flight"] == 0


def test_dead_pgserver_handles_are_forgotten(tmp_path: Path) -> None:
    # Given a handle list naming this process and one that has exited (as after SIGKILL)
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(exited.stdout)
    alive_pid = __import__("os").getpid()
    (tmp_path / ".handle_pids.json").write_text(json.dumps([alive_pid, dead_pid]))

    # When weft cleans up before starting the server
    removed = forget_dead_handles(tmp_path)

    # Then only the dead one is gone
    assert removed == [dead_pid]
    assert json.loads((tmp_path / ".handle_pids.json").read_text()) == [alive_pid]
    assert forget_dead_handles(tmp_path) == []
