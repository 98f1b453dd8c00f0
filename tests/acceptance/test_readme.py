"""The README's examples, run as written against a real server (`localhost:8000` pointed at
it, external URLs at a local peer): they cannot break unnoticed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anyio
import pytest

from tests.readme import Session, section
from tests.support import WeftServer, json_response, read_body, serve_asgi

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
    runs, workflows, copy = await anyio_run_all(session, section("HTTP API"))
    assert [r["id"] for r in runs["items"]] == [failed["id"]]
    assert [w["id"] for w in workflows["items"]] == [workflow["id"]]
    assert workflows["total"] == 1
    assert copy["name"] == "todo digest v2"
    assert copy["tags"] == ["reports"]
    assert copy["webhook_slug"] != "todo-digest"
