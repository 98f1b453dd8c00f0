"""Run retention (WEFT_RUN_RETENTION_S): runs finished longer ago are deleted with all they
left; unfinished and recent runs stay; a batch per upkeep; nothing without a retention. And
DELETE /runs/{id} of one finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import run_weft_server

pytestmark = pytest.mark.anyio

CHAIN = {
    "nodes": [
        {"id": "a", "type": "start"},
        {"id": "b", "type": "transform", "params": {"template": '{"n": {{ trigger.n }}}'}},
    ],
    "edges": [{"id": "e", "from": "a", "to": "b"}],
}
COUNTS = {
    "runs": "SELECT count(*) FROM runs WHERE id = ANY($1::uuid[])",
    "node_runs": "SELECT count(*) FROM node_runs WHERE run_id = ANY($1::uuid[])",
    "logs": "SELECT count(*) FROM logs WHERE run_id = ANY($1::uuid[])",
    "run_events": "SELECT count(*) FROM run_events WHERE run_id = ANY($1::uuid[])",
}


async def rows_of(database_url: str, run_ids: list[str]) -> dict[str, int]:
    """How many rows each table holds for these runs."""
    conn = await asyncpg.connect(database_url)
    try:
        return {table: await conn.fetchval(query, run_ids) for table, query in COUNTS.items()}
    finally:
        await conn.close()


async def finished_days_ago(database_url: str, run_ids: list[str], days: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE runs SET finished_at = now() - make_interval(days => $2) "
            "WHERE id = ANY($1::uuid[])",
            run_ids,
            days,
        )
    finally:
        await conn.close()


async def test_runs_finished_before_the_retention_go_with_all_they_left(
    database_url: str, tmp_path: Path
) -> None:
    retention = 30 * 24 * 3600
    async with run_weft_server(database_url, tmp_path, weft_run_retention_s=retention) as weft:
        workflow = await weft.create_workflow(CHAIN)
        runs: list[dict[str, Any]] = [await weft.run(workflow["id"], {"n": n}) for n in range(3)]
        old, recent = [r["id"] for r in runs[:2]], [runs[2]["id"]]
        # A run still running (started long ago, never finished) is never pruned
        waiting = await weft.client.post(
            "/workflows",
            json={
                "name": "slow",
                "graph": {"nodes": [{"id": "d", "type": "delay", "params": {"seconds": 30}}]},
            },
        )
        slow = (await weft.client.post(f"/workflows/{waiting.json()['id']}/run", json={})).json()
        await finished_days_ago(database_url, old, 31)
        await finished_days_ago(database_url, recent, 29)
        assert (await rows_of(database_url, old))["logs"] > 0

        pruned = await weft.system.runtime.leases.prune_runs()

        assert pruned == 2
        metrics = (await weft.client.get("/metrics")).text
        assert "weft_runs_pruned_total 2.0" in metrics.splitlines()
        assert await rows_of(database_url, old) == dict.fromkeys(COUNTS, 0)
        assert (await rows_of(database_url, recent))["runs"] == 1
        assert (await weft.client.get(f"/runs/{old[0]}")).status_code == 404
        assert (await weft.client.get(f"/runs/{recent[0]}")).status_code == 200
        assert (await weft.client.get(f"/runs/{slow['id']}")).json()["status"] == "running"
        listed = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]
        assert [r["id"] for r in listed] == recent
        assert await weft.system.runtime.leases.prune_runs() == 0


async def test_without_a_retention_runs_are_kept(database_url: str, tmp_path: Path) -> None:
    async with run_weft_server(database_url, tmp_path) as weft:
        workflow = await weft.create_workflow(CHAIN)
        run = await weft.run(workflow["id"], {"n": 1})
        await finished_days_ago(database_url, [run["id"]], 3650)
        assert await weft.system.runtime.leases.prune_runs() == 0
        assert (await weft.client.get(f"/runs/{run['id']}")).status_code == 200


async def test_a_backlog_goes_a_batch_at_a_time(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runner.runtime.leases.PRUNE_BATCH", 2)
    async with run_weft_server(database_url, tmp_path, weft_run_retention_s=60) as weft:
        workflow = await weft.create_workflow(CHAIN)
        ids = [(await weft.run(workflow["id"], {"n": n}))["id"] for n in range(5)]
        await finished_days_ago(database_url, ids, 1)
        batches = [await weft.system.runtime.leases.prune_runs() for _ in range(4)]
        assert batches == [2, 2, 1, 0]
        assert (await rows_of(database_url, ids))["runs"] == 0


async def test_a_finished_run_is_deleted_on_request_and_a_running_one_is_not(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path) as weft:
        workflow = await weft.create_workflow(CHAIN)
        done = await weft.run(workflow["id"], {"n": 1})
        slow_workflow = await weft.create_workflow(
            {"nodes": [{"id": "d", "type": "delay", "params": {"seconds": 30}}], "edges": []}
        )
        slow = (await weft.client.post(f"/workflows/{slow_workflow['id']}/run", json={})).json()

        busy = await weft.client.delete(f"/runs/{slow['id']}")
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "run_not_finished"
        assert (await rows_of(database_url, [slow["id"]]))["runs"] == 1

        deleted = await weft.client.delete(f"/runs/{done['id']}")
        assert deleted.status_code == 204
        assert await rows_of(database_url, [done["id"]]) == dict.fromkeys(COUNTS, 0)
        assert (await weft.client.get(f"/runs/{done['id']}")).status_code == 404
        for missing in (done["id"], "00000000-0000-4000-8000-000000000000", "not-a-uuid"):
            response = await weft.client.delete(f"/runs/{missing}")
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/json")
