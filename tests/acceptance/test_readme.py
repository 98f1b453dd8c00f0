"""The README's examples, run as written against a real server (`localhost:8000` pointed at
it, external URLs at a local peer): they cannot break unnoticed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.fernet import Fernet

from tests.readme import Session, commands, section
from tests.support import WeftServer, json_response, read_body, run_weft_server, serve_asgi

pytestmark = pytest.mark.anyio


hits: Counter[str] = Counter()


async def todos(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """jsonplaceholder's /todos/{n}, as the curl session calls it (calls counted)."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    hits[scope["path"]] += 1
    n = int(scope["path"].rsplit("/", 1)[-1])
    body = {"userId": 1, "id": n, "title": f"todo number {n}", "completed": False}
    await json_response(send, 200, json.dumps(body).encode())


async def test_the_curl_session_runs_as_written(weft: WeftServer) -> None:
    hits.clear()
    async with serve_asgi(todos) as peer:
        session = Session(weft.url, replace={"https://jsonplaceholder.typicode.com": peer})
        await anyio_run_all(session, section("A curl session"))
        assert session.workflow_id is not None
        # the run, the webhook's, and the re-run of the webhook's
        assert len(session.run_ids) == 3
        runs = [await weft.wait(run_id) for run_id in session.run_ids]
    rerun = runs.pop()
    for todo, run in zip((1, 2), runs, strict=True):
        assert run["status"] == "succeeded", run["error"]
        # summarise reads shape's output two nodes up (nodes.shape), not its parent's
        assert run["outputs"]["summarise"]["text"] == f"SUMMARISE: TODO NUMBER {todo}"
        assert run["outputs"]["save"]["size"] > 0
    # The re-run ran summarise again and copied the rest: the same outputs, one fetch less
    assert rerun["status"] == "succeeded"
    assert rerun["rerun_of"] == runs[1]["id"]
    assert rerun["outputs"] == runs[1]["outputs"]
    assert hits == {"/todos/1": 1, "/todos/2": 1}
    tried = session.answers[-1]
    assert tried["status"] == "succeeded"
    assert tried["output"] == {"result": {"title": "hello"}}


async def anyio_run_all(session: Session, text: str) -> list[Any]:
    """`session.run_all` in a worker thread: the server answers on this event loop."""
    return await anyio.to_thread.run_sync(session.run_all, text)


async def test_the_data_and_control_flow_examples_run_as_written(weft: WeftServer) -> None:
    async with serve_asgi(todos) as peer:
        session = Session(weft.url, replace={"https://jsonplaceholder.typicode.com": peer})
        answers = await anyio_run_all(session, section("Data and control flow"))
    titles, nested, sorry = (a for a in answers if isinstance(a, dict) and "outputs" in a)
    child = nested["outputs"]["titles"]
    assert child["status"] == "succeeded"
    assert child["outputs"]["titles"] == {"result": ["todo number 4", "todo number 5"]}
    assert titles["status"] == "succeeded"
    assert titles["outputs"]["titles"] == {
        "result": ["todo number 1", "todo number 2", "todo number 3"]
    }
    assert titles["outputs"]["fetch"]["count"] == 3
    assert sorry["status"] == "succeeded"
    assert sorry["outputs"]["sorry"] == {"result": "sorry: ConnectError"}
    assert "thanks" not in sorry["outputs"]


async def test_the_search_examples_run_as_written(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        {
            "nodes": [
                {"id": "boom", "type": "http.request", "params": {"url": "http://127.0.0.1:1"}}
            ]
        },
        name="todo digest",
        tags=["reports"],
        webhook_slug="todo-digest",
    )
    failed = (await weft.client.post("/hooks/todo-digest?wait=30", json={})).json()
    assert failed["status"] == "failed"
    session = Session(weft.url)
    session.workflow_id = workflow["id"]
    session.run_ids = [failed["id"]]
    runs, workflows, copy, deleted = await anyio_run_all(session, section("HTTP API"))
    assert [r["id"] for r in runs["items"]] == [failed["id"]]
    assert [w["id"] for w in workflows["items"]] == [workflow["id"]]
    assert workflows["total"] == 1
    assert copy["name"] == "todo digest v2"
    assert copy["tags"] == ["reports"]
    assert copy["webhook_slug"] != "todo-digest"
    assert deleted == 204
    assert (await weft.client.get(f"/runs/{failed['id']}")).status_code == 404


async def test_the_schedule_examples_run_as_written(weft: WeftServer) -> None:
    workflow = await weft.create_workflow({"nodes": [{"id": "start", "type": "start"}]})
    session = Session(weft.url)
    session.workflow_id = workflow["id"]
    created, listed = await anyio_run_all(session, section("Schedules"))
    assert created["cron"] == "0 7 * * 1-5"
    assert created["next_fire_at"] is not None
    assert [s["id"] for s in listed["items"]] == [created["id"]]


async def test_the_secret_examples_run_as_written(database_url: str, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    async with (
        run_weft_server(database_url, tmp_path / "d", weft_secret_key=key) as weft,
        serve_asgi(todos) as peer,
    ):
        session = Session(weft.url, replace={"https://jsonplaceholder.typicode.com": peer})
        answers = await anyio_run_all(session, section("Secrets"))
    assert answers[0]["name"] == "TODO_API_KEY"
    assert answers[2]["status"] == "succeeded"
    (node,) = answers[3]["items"]
    assert node["input"]["params"]["headers"]["Authorization"] == "Bearer ***"
    assert "abc123" not in json.dumps(answers)


async def test_the_respond_example_runs_as_written(weft: WeftServer) -> None:
    session = Session(weft.url)
    _, answered = await anyio_run_all(session, section("Answering a webhook: the `respond` block"))
    head, _, body = answered.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 202")
    assert json.loads(body) == {"received": "evt_1"}


async def test_the_outbound_example_runs_as_written(weft: WeftServer) -> None:
    # The metadata address is refused before any connection: nothing leaves loopback.
    _, run = await anyio_run_all(Session(weft.url), section("Safe outbound calls"))
    assert run["status"] == "failed"
    assert run["error"]["type"] == "OutboundRefusedError"
    assert "169.254.169.254" in run["error"]["message"]


async def test_the_metrics_example_runs_as_written(weft: WeftServer) -> None:
    workflow = await weft.create_workflow({"nodes": [{"id": "start", "type": "start"}]})
    await weft.run(workflow["id"])
    (lines,) = await anyio_run_all(Session(weft.url), section("Metrics"))
    assert 'weft_runs_started_total{trigger_type="manual"} 1.0' in lines
    assert 'weft_runs_finished_total{status="succeeded",trigger_type="manual"} 1.0' in lines


async def test_the_rate_limit_example_runs_as_written(weft: WeftServer) -> None:
    text = section("Triggers: idempotency, waiting, signatures")
    limited = [c for c in commands(text) if "ingest" in c]
    session = Session(weft.url)
    created = await anyio.to_thread.run_sync(session.run, limited[0])
    assert created["rate_limit"] == {"requests": 3, "per_s": 60.0}
    codes = await anyio.to_thread.run_sync(session.run, limited[1])
    assert codes.split() == ["202", "202", "202", "429"]
