"""Several weft servers on one PostgreSQL: each with its own runtime, connections and
listener, as separate processes have (the kill -9 failover runs real processes, in
test_crash.py). What one executes, the other streams, replays, waits for and cancels."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from websockets.asyncio.client import connect

from tests.acceptance.test_live import CHAIN, receive_all, sse_events, start_run, ws_url
from tests.support import WeftServer, run_weft_server, wait_until

pytestmark = pytest.mark.anyio

FANOUT = {
    "nodes": [
        {"id": "start", "type": "start"},
        *(
            {"id": f"n{i}", "type": "delay", "params": {"seconds": 0.002 * (i % 7)}}
            for i in range(60)
        ),
    ],
    "edges": [{"id": f"e{i}", "from": "start", "to": f"n{i}"} for i in range(60)],
}
SLOW = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "wait", "type": "delay", "params": {"seconds": 30}},
    ],
    "edges": [{"id": "a", "from": "start", "to": "wait"}],
}


@asynccontextmanager
async def two(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[WeftServer, WeftServer]]:
    async with (
        run_weft_server(database_url, tmp_path / "a") as a,
        run_weft_server(database_url, tmp_path / "b") as b,
    ):
        yield a, b


def statuses_from(snapshot: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, str]:
    """A client's view of the nodes: the snapshot's, then each event's status applied."""
    view = {n["node_id"]: n["status"] for n in snapshot["nodes"]}
    for event in events:
        if event.get("node_id") and event["type"].startswith("node.") and "status" in event:
            view[event["node_id"]] = event["status"]
    return view


async def test_a_run_on_a_streams_live_to_websocket_and_sse_clients_on_b(
    database_url: str, tmp_path: Path
) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(CHAIN)
        run_id = await start_run(a, workflow["id"], 5)  # executes on A, which stored it
        sse: list[dict[str, Any]] = []

        async def read_sse() -> None:
            async with b.client.stream("GET", f"/runs/{run_id}/events") as response:
                async for event in sse_events(response):
                    sse.append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_sse)
            async with connect(ws_url(b, f"/ws/runs/{run_id}")) as ws:
                messages = await receive_all(ws)
                assert ws.close_code == 1000
        assert a.system.runtime.statistics().supervisors == 1
        assert b.system.runtime.statistics().supervisors == 0  # B executed nothing

    snapshot, events = messages[0], messages[1:]
    assert snapshot["type"] == "snapshot"
    assert [m["seq"] for m in events] == list(range(snapshot["seq"] + 1, events[-1]["seq"] + 1))
    assert events[-1]["type"] == "run.finished"
    assert set(statuses_from(snapshot, events).values()) == {"succeeded"}
    assert [e["data"] for e in sse[1:]] == [e for e in events if e["seq"] > sse[0]["id"]]
    assert sse[-1]["event"] == "run.finished"


async def test_reconnecting_to_the_other_process_misses_nothing_and_repeats_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(CHAIN)
        for n in range(3):
            run_id = await start_run(a, workflow["id"], n)
            async with connect(ws_url(a, f"/ws/runs/{run_id}?after=0")) as ws:
                first = [json.loads(await ws.recv()) for _ in range(2 + n)]
            # mid-run, to the other process, after the last event seen
            after = first[-1]["seq"]
            async with connect(ws_url(b, f"/ws/runs/{run_id}?after={after}")) as ws:
                rest = await receive_all(ws)
            seen = first + rest
            assert [m["seq"] for m in seen] == list(range(1, len(seen) + 1))
            assert rest[-1]["type"] == "run.finished"


async def test_every_snapshot_agrees_with_the_events_before_and_after_it(
    database_url: str, tmp_path: Path
) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(FANOUT)
        views: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

        async def watch(server: WeftServer, run_id: str, delay: float) -> None:
            await anyio.sleep(delay)
            async with connect(ws_url(server, f"/ws/runs/{run_id}")) as ws:
                messages = await receive_all(ws)
            views.append((messages[0], messages[1:]))

        for _ in range(3):
            run_id = await start_run(a, workflow["id"])
            async with anyio.create_task_group() as tg:
                for i in range(16):  # before, during and after the fan-out, on both
                    tg.start_soon(watch, (a, b)[i % 2], run_id, 0.004 * i)
            # the log, read whole: what events up to any seq describe
            async with connect(ws_url(b, f"/ws/runs/{run_id}?after=0")) as ws:
                log = await receive_all(ws)
            for snapshot, events in views:
                before = [e for e in log if e["seq"] <= snapshot["seq"]]
                empty = {"nodes": [{"node_id": n["node_id"], "status": "pending"} for n in
                                   snapshot["nodes"]]}  # fmt: skip
                if snapshot["run"]["status"] in ("running", "pending"):
                    # the snapshot is exactly what the events up to its seq describe
                    assert statuses_from(snapshot, []) == statuses_from(empty, before)
                    assert events[0]["seq"] == snapshot["seq"] + 1
                # and snapshot + what followed is the finished run, every node succeeded
                assert events[-1]["type"] == "run.finished"
                assert set(statuses_from(snapshot, events).values()) == {"succeeded"}
            views.clear()


async def test_the_workflow_channel_hears_of_runs_and_updates_made_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(CHAIN)
        async with connect(ws_url(b, f"/ws/workflows/{workflow['id']}")) as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot"
            run_id = await start_run(a, workflow["id"])
            seen: list[dict[str, Any]] = []
            with anyio.fail_after(20):
                while not seen or seen[-1]["type"] != "run.finished":
                    seen.append(json.loads(await ws.recv()))
            assert seen[0]["type"] == "run.created", seen
            assert {m["run_id"] for m in seen} == {run_id}
            run_seqs = [m["run_seq"] for m in seen[1:]]
            assert run_seqs == sorted(run_seqs)
            assert [m["seq"] for m in seen] == list(range(snapshot["seq"] + 1, seen[-1]["seq"] + 1))

            renamed = await a.client.put(
                f"/workflows/{workflow['id']}", json={"name": "renamed", "graph": CHAIN}
            )
            assert renamed.status_code == 200
            with anyio.fail_after(10):
                updated = json.loads(await ws.recv())
            assert updated["type"] == "workflow.updated"
            assert updated["workflow"]["name"] == "renamed"


async def test_cancel_on_b_of_a_run_executing_on_a(database_url: str, tmp_path: Path) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(SLOW)
        run_id = await start_run(a, workflow["id"])
        async with connect(ws_url(b, f"/ws/runs/{run_id}?after=0")) as ws:
            with anyio.fail_after(10):
                while json.loads(await ws.recv()).get("node_id") != "wait":
                    pass  # until the slow node has started, on A
            with anyio.fail_after(10):
                response = await b.client.post(f"/runs/{run_id}/cancel")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"  # B waited for A's answer
            rest = await receive_all(ws)
        assert rest[-1]["type"] == "run.finished"
        assert rest[-1]["status"] == "cancelled"
        nodes = await b.nodes(run_id)
        assert nodes["wait"]["status"] == "cancelled"


async def test_events_replay_after_every_process_restarts(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path / "a") as a:
        workflow = await a.create_workflow(CHAIN)
        run = await a.run(workflow["id"], {"n": 2})
        async with connect(ws_url(a, f"/ws/runs/{run['id']}?after=0")) as ws:
            before = await receive_all(ws)
    async with run_weft_server(database_url, tmp_path / "b") as b:
        async with connect(ws_url(b, f"/ws/runs/{run['id']}?after=0")) as ws:
            after = await receive_all(ws)
        async with connect(ws_url(b, f"/ws/runs/{run['id']}?after=4")) as ws:
            tail = await receive_all(ws)
    assert after == before
    assert tail == before[4:]
    assert before[-1]["type"] == "run.finished"


GATE = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "wait", "type": "delay", "params": {"seconds": 0.05}},
    ],
    "edges": [{"id": "a", "from": "start", "to": "wait"}],
}


async def test_max_concurrency_holds_across_processes(database_url: str, tmp_path: Path) -> None:
    async with two(database_url, tmp_path) as (a, b):
        workflow = await a.create_workflow(GATE, max_concurrency=1)
        run_ids = []
        for i in range(8):  # posted alternately to A and B
            run_ids.append(await start_run((a, b)[i % 2], workflow["id"], i))
        runs = [await a.wait(run_id) for run_id in run_ids]
        owners = await lease_owners(database_url, run_ids)
    assert {r["status"] for r in runs} == {"succeeded"}
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    # in creation order, whichever process ran each
    assert [r["id"] for r in sorted(runs, key=lambda r: r["started_at"])] == run_ids
    assert owners <= {a.system.runtime.services.owner, b.system.runtime.services.owner}


async def lease_owners(database_url: str, run_ids: list[str]) -> set[Any]:
    """Which processes held the runs (the last lease of each stays on its row)."""
    conn = await asyncpg.connect(database_url)
    try:
        query = "SELECT lease_owner FROM runs WHERE id = ANY($1::uuid[])"
        rows = await conn.fetch(query, [uuid.UUID(r) for r in run_ids])
    finally:
        await conn.close()
    return {r["lease_owner"] for r in rows}


async def test_a_burst_beyond_max_runs_is_finished_by_both_processes(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        run_weft_server(database_url, tmp_path / "a", weft_max_runs=3) as a,
        run_weft_server(database_url, tmp_path / "b", weft_max_runs=3) as b,
    ):
        workflow = await a.create_workflow(GATE)
        response = await a.client.post(
            f"/workflows/{workflow['id']}/runs/batch",
            json={"runs": [{"start_input": {"n": i}} for i in range(40)]},
        )
        assert response.status_code == 202, response.text
        run_ids = [r["id"] for r in response.json()["items"]]
        peak = 0

        async def finished() -> bool:
            nonlocal peak
            for server in (a, b):
                stats = server.system.runtime.statistics()
                peak = max(peak, stats.runs_in_flight + stats.runs_queued)
            statuses = {(await a.client.get(f"/runs/{r}")).json()["status"] for r in run_ids}
            return statuses == {"succeeded"}

        await wait_until(finished, timeout_s=30, poll_s=0.01)
        owners = await lease_owners(database_url, run_ids)
    assert peak <= 3  # never more than WEFT_MAX_RUNS in one process
    assert owners == {a.system.runtime.services.owner, b.system.runtime.services.owner}


async def test_wait_on_a_process_that_executes_nothing(database_url: str, tmp_path: Path) -> None:
    async with (
        run_weft_server(database_url, tmp_path / "a") as a,
        run_weft_server(database_url, tmp_path / "b", weft_max_runs=0) as b,
    ):
        workflow = await b.create_workflow(CHAIN)
        with anyio.fail_after(20):
            response = await b.client.post(
                f"/workflows/{workflow['id']}/run?wait=15", json={"start_input": {"n": 4}}
            )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
        assert response.json()["outputs"]["shape"] == {"result": 8}
        assert await lease_owners(database_url, [response.json()["id"]]) == {
            a.system.runtime.services.owner
        }
        assert b.system.runtime.statistics().supervisors == 0


async def test_pruned_events_still_answer_with_a_snapshot(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path / "a", weft_event_retention_s=0) as a:
        workflow = await a.create_workflow(CHAIN)
        run = await a.run(workflow["id"], {"n": 1})
        await a.system.runtime.leases.prune_events()
        async with connect(ws_url(a, f"/ws/runs/{run['id']}?after=2")) as ws:
            resync = await receive_all(ws)
        async with connect(ws_url(a, f"/ws/runs/{run['id']}")) as ws:
            fresh = await receive_all(ws)
    assert [m["type"] for m in resync] == ["snapshot", "run.finished"]
    assert [{**m, "ts": None} for m in resync] == [{**m, "ts": None} for m in fresh]
    assert resync[1]["seq"] == resync[0]["seq"] + 1
    assert resync[0]["run"]["status"] == "succeeded"
