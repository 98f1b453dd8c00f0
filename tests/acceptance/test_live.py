"""Live progress through a real Hypercorn server: websockets (a real client) and SSE."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import wsproto
import wsproto.events
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from blocks import RunContext, standard_registry
from tests.support import WeftServer, run_weft_server

pytestmark = pytest.mark.anyio

CHAIN = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "wait", "type": "delay", "params": {"seconds": 0.05}},
        {"id": "shape", "type": "transform", "params": {"template": "{{ trigger.n * 2 }}"}},
    ],
    "edges": [
        {"id": "a", "from": "start", "to": "wait"},
        {"id": "b", "from": "wait", "to": "shape"},
    ],
}


def ws_url(weft: WeftServer, path: str) -> str:
    return weft.url.replace("http://", "ws://") + path


async def receive_all(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    messages = []
    with anyio.fail_after(20):
        try:
            while True:
                messages.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            pass
    return messages


async def start_run(weft: WeftServer, workflow_id: str, n: int = 1) -> str:
    response = await weft.client.post(
        f"/workflows/{workflow_id}/run", json={"start_input": {"n": n}}
    )
    assert response.status_code == 202
    run_id: str = response.json()["id"]
    return run_id


def assert_contiguous(messages: list[dict[str, Any]], first_seq: int) -> None:
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(first_seq, first_seq + len(seqs))), seqs


async def test_run_channel_replays_the_full_sequence_in_order(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(CHAIN)
    run_id = await start_run(weft, workflow["id"], 21)

    # When a client asks for everything after seq 0
    async with connect(ws_url(weft, f"/ws/runs/{run_id}?after=0")) as ws:
        messages = await receive_all(ws)
        assert ws.close_code == 1000

    # Then it gets every event once, in order, with increasing seq, ending with run.finished
    assert_contiguous(messages, 1)
    assert all({"type", "run_id", "seq", "ts"} <= m.keys() for m in messages)
    assert {m["run_id"] for m in messages} == {run_id}
    statuses = [(m["type"], m.get("node_id")) for m in messages if m["type"] != "node.log"]
    assert statuses == [
        ("run.started", None),
        ("node.started", "start"),
        ("node.succeeded", "start"),
        ("run.progress", None),
        ("node.started", "wait"),
        ("node.succeeded", "wait"),
        ("run.progress", None),
        ("node.started", "shape"),
        ("node.succeeded", "shape"),
        ("run.progress", None),
        ("run.finished", None),
    ]
    by_type = {m["type"]: m for m in messages}
    assert by_type["run.finished"]["status"] == "succeeded"
    assert by_type["run.finished"]["duration"]
    progress = [m["progress"] for m in messages if m["type"] == "run.progress"]
    assert progress == [33, 66, 100]
    shape = [m for m in messages if m.get("node_id") == "shape" and m["type"] == "node.succeeded"]
    assert shape[0]["output"] == {"result": 42}
    assert shape[0]["duration_ms"] >= 0
    logs = [m for m in messages if m["type"] == "node.log"]
    assert next(m["message"] for m in logs) == "run started"


async def test_connecting_without_after_starts_with_a_snapshot(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(CHAIN)
    run_id = await start_run(weft, workflow["id"])
    async with connect(ws_url(weft, f"/ws/runs/{run_id}")) as ws:
        messages = await receive_all(ws)
    snapshot = messages[0]
    assert snapshot["type"] == "snapshot"
    assert snapshot["run"]["id"] == run_id
    # a run's node runs exist from its creation, so even an early snapshot lists them all
    assert [n["node_id"] for n in snapshot["nodes"]] == ["start", "wait", "shape"]
    assert_contiguous(messages[1:], snapshot["seq"] + 1)
    assert messages[-1]["type"] == "run.finished"


async def test_finished_run_gets_snapshot_and_finished_then_a_clean_close(
    weft: WeftServer, database_url: str, tmp_path: Path
) -> None:
    workflow = await weft.create_workflow(CHAIN)
    run = await weft.run(workflow["id"], {"n": 1})
    async with connect(ws_url(weft, f"/ws/runs/{run['id']}")) as ws:
        messages = await receive_all(ws)
        assert ws.close_code == 1000
    assert [m["type"] for m in messages] == ["snapshot", "run.finished"]
    assert messages[0]["run"]["status"] == "succeeded"
    assert {n["status"] for n in messages[0]["nodes"]} == {"succeeded"}
    assert messages[1]["seq"] == messages[0]["seq"] + 1

    # and the same from a process that never had its events in memory (read from storage)
    async with (
        run_weft_server(database_url, tmp_path / "other") as other,
        connect(ws_url(other, f"/ws/runs/{run['id']}")) as ws,
    ):
        stored = await receive_all(ws)
    assert [m["type"] for m in stored] == ["snapshot", "run.finished"]
    assert stored[1]["seq"] == messages[1]["seq"]
    assert stored[1]["status"] == "succeeded"


async def test_reconnect_with_after_misses_nothing_and_repeats_nothing(
    weft: WeftServer, database_url: str, tmp_path: Path
) -> None:
    workflow = await weft.create_workflow(CHAIN)
    run_id = await start_run(weft, workflow["id"])
    async with connect(ws_url(weft, f"/ws/runs/{run_id}?after=0")) as ws:
        first = [json.loads(await ws.recv()) for _ in range(3)]
    async with connect(ws_url(weft, f"/ws/runs/{run_id}?after={first[-1]['seq']}")) as ws:
        rest = await receive_all(ws)
    assert rest[0]["type"] != "snapshot"
    assert_contiguous(first + rest, 1)
    assert rest[-1]["type"] == "run.finished"

    # A reconnect to another process replays the same events from the durable log
    async with run_weft_server(database_url, tmp_path / "other") as other:
        async with connect(ws_url(other, f"/ws/runs/{run_id}?after=2")) as ws:
            replayed = await receive_all(ws)
        assert replayed == (first + rest)[2:]
        final_seq = rest[-1]["seq"]
        async with connect(ws_url(other, f"/ws/runs/{run_id}?after={final_seq}")) as ws:
            assert await receive_all(ws) == []


async def test_workflow_channel_sees_runs_and_graph_updates(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(CHAIN)
    async with connect(ws_url(weft, f"/ws/workflows/{workflow['id']}")) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["workflow"]["id"] == workflow["id"]
        assert snapshot["runs"] == []

        run_id = await start_run(weft, workflow["id"])
        seen: list[dict[str, Any]] = []
        with anyio.fail_after(20):
            while not seen or seen[-1]["type"] != "run.finished":
                seen.append(json.loads(await ws.recv()))

        # A second editor saves the graph; this one hears of it
        renamed = {"name": "renamed", "graph": CHAIN}
        assert (await weft.client.put(f"/workflows/{workflow['id']}", json=renamed)).is_success
        with anyio.fail_after(10):
            updated = json.loads(await ws.recv())

    assert seen[0]["type"] == "run.created"
    assert {m["run_id"] for m in seen} == {run_id}
    assert "node.log" not in {m["type"] for m in seen}
    assert [m["node_id"] for m in seen if m["type"] == "node.succeeded"] == [
        "start",
        "wait",
        "shape",
    ]
    assert_contiguous([*seen, updated], snapshot["seq"] + 1)
    assert all(m["run_seq"] >= 0 for m in seen)
    assert updated["type"] == "workflow.updated"
    assert updated["workflow"]["name"] == "renamed"


async def test_unknown_ids_close_with_4404(weft: WeftServer) -> None:
    for path in (f"/ws/runs/{uuid.uuid4()}", f"/ws/workflows/{uuid.uuid4()}"):
        async with connect(ws_url(weft, path)) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4404
            assert ws.close_reason.startswith("no ")
    with pytest.raises(InvalidStatus):
        async with connect(ws_url(weft, "/ws/runs/not-a-uuid")):
            pass
    async with connect(ws_url(weft, f"/ws/runs/{uuid.uuid4()}?after=-3")) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4400


class ChattyParams(BaseModel):
    lines: int


def chatty_registry() -> Any:
    registry = standard_registry()

    @registry.register("chatty", ChattyParams)
    async def chatty(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Logs a lot, in bursts smaller than a subscriber's buffer."""
        for i in range(ctx.params_as(ChattyParams).lines):
            ctx.log.info(f"line {i}", blob="x" * 3000)
            if i % 20 == 0:
                await anyio.sleep(0.01)
        return {"done": True}

    return registry


def small_receive_buffer_socket(url: str) -> socket.socket:
    """A client socket whose kernel receive buffer is tiny, so not reading stalls quickly."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_client_that_stops_reading_never_stalls_a_run(
    database_url: str, tmp_path: Path
) -> None:
    lines = 3000  # ~9 MB of events: more than every buffer between server and client
    graph = {"nodes": [{"id": "talk", "type": "chatty", "params": {"lines": lines}}], "edges": []}
    async with run_weft_server(database_url, tmp_path, registry=chatty_registry()) as weft:
        workflow = await weft.create_workflow(graph)
        response = await weft.client.post(f"/workflows/{workflow['id']}/run", json={})
        run_id = response.json()["id"]
        url = ws_url(weft, f"/ws/runs/{run_id}?after=0")
        # The stalled client's library stops reading its socket once one message is queued.
        stalled_sock = small_receive_buffer_socket(weft.url)
        async with (
            # No compression: the point is bytes piling up between server and client.
            connect(url, max_queue=1, sock=stalled_sock, compression=None) as stalled,
            connect(url, max_queue=None) as reader,
        ):
            got: list[dict[str, Any]] = []

            async def read_everything() -> None:
                got.extend(await receive_all(reader))

            async with anyio.create_task_group() as tg:
                tg.start_soon(read_everything)
                # Then the run finishes while the stalled client reads nothing
                run = await weft.wait(run_id)
            assert run["status"] == "succeeded"

            # And the reading client got every event, in order
            assert_contiguous(got, 1)
            assert got[-1]["type"] == "run.finished"
            assert sum(1 for m in got if m["type"] == "node.log") >= lines

            # And the stalled client, reading at last, is told it lagged, then re-synced
            late = await receive_all(stalled)
            types = [m["type"] for m in late]
            assert "lagged" in types, (len(late), len(got))
            after_lag = late[types.index("lagged") + 1 :]
            assert after_lag[0]["type"] == "snapshot"
            assert after_lag[0]["run"]["status"] == "succeeded"
            assert after_lag[-1]["type"] == "run.finished"
            assert len(late) < len(got)


async def test_server_pings_idle_websockets(database_url: str, tmp_path: Path) -> None:
    async with run_weft_server(database_url, tmp_path, weft_ws_ping_s=0.2) as weft:
        workflow = await weft.create_workflow(CHAIN)
        host, port = weft.url.removeprefix("http://").split(":")
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        stream = await anyio.connect_tcp(host, int(port))
        async with stream:
            await stream.send(
                client.send(
                    wsproto.events.Request(host=host, target=f"/ws/workflows/{workflow['id']}")
                )
            )
            pings = 0
            with anyio.fail_after(10):
                while pings < 2:
                    client.receive_data(await stream.receive())
                    for event in client.events():
                        if isinstance(event, wsproto.events.Ping):
                            pings += 1
                            await stream.send(client.send(event.response()))
            assert pings == 2


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and event:
            yield event
            event = {}


async def test_server_sent_events(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(CHAIN)
    run_id = await start_run(weft, workflow["id"])
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with weft.client.stream("GET", f"/runs/{run_id}/events?after=0") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in sse_events(response):
                received.append(event)
                if len(received) == 4:
                    break
        # Reconnect with Last-Event-ID: the rest, nothing twice
        headers = {"Last-Event-ID": str(received[-1]["id"])}
        async with weft.client.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
            async for event in sse_events(response):
                received.append(event)
    assert [e["id"] for e in received] == list(range(1, len(received) + 1))
    assert all(e["event"] == e["data"]["type"] for e in received)
    assert received[-1]["event"] == "run.finished"

    missing = await weft.client.get(f"/runs/{uuid.uuid4()}/events")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "run_not_found"
