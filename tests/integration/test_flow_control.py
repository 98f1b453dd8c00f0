"""Data and control flow an editor's users expect (nodes.<id>, for_each, on_error), end to
end through a real server and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.test_runs import chain
from tests.support import Hits, WeftServer, json_response, read_body, serve_asgi, wait_until

pytestmark = pytest.mark.anyio

# Nothing listens on port 1: a call there fails the node (ConnectError).
REFUSED = "http://127.0.0.1:1"


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, Hits]]:
    """GET /n/{k} answers {"k": k}."""
    hits = Hits()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        hits.add(scope["path"])
        k = scope["path"].rsplit("/", 1)[-1]
        await json_response(send, 200, f'{{"k": "{k}"}}'.encode())

    async with serve_asgi(app) as url:
        yield url, hits


async def test_for_each_over_http_with_its_items_stored_and_told(
    weft: WeftServer, api: tuple[str, Hits]
) -> None:
    url, hits = api
    workflow = await weft.create_workflow(
        chain(
            {"id": "start", "type": "start"},
            {
                "id": "each",
                "type": "http.request",
                "params": {
                    "url": url + "/n/{{ item }}",
                    "for_each": "{{ trigger.ks }}",
                    "concurrency": 2,
                },
            },
            {
                "id": "sum",
                "type": "transform",
                "params": {
                    "template": "{{ nodes.each['items'] | map(attribute='data.k') | join(',') }}"
                },
            },
        )
    )
    run = await weft.run(workflow["id"], {"ks": ["a", "b", "c"]})
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["sum"] == {"result": "a,b,c"}
    assert run["outputs"]["each"]["count"] == 3
    assert [hits[f"/n/{k}"] for k in "abc"] == [1, 1, 1]
    nodes = await weft.nodes(run["id"])
    assert nodes["each"]["items"] == {"done": 3, "total": 3}
    assert nodes["each"]["input"]["for_each"] == ["a", "b", "c"]
    assert nodes["sum"]["items"] is None
    async with weft.client.stream("GET", f"/runs/{run['id']}/events?after=0") as response:
        text = (await response.aread()).decode()
    assert text.count("event: node.item") == 3


async def test_handled_failures_leave_the_run_succeeded_and_visible(weft: WeftServer) -> None:
    def fetch(node_id: str, path: str, on_error: str) -> dict[str, Any]:
        params = {"url": REFUSED + path, "on_error": on_error}
        return {"id": node_id, "type": "http.request", "params": params}

    def transform(node_id: str, template: str) -> dict[str, Any]:
        return {"id": node_id, "type": "transform", "params": {"template": template}}

    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            fetch("soft", "/fail/1", "continue"),
            fetch("try", "/fail/2", "branch"),
            transform("recover", "{{ upstream.try.error.type }}"),
            transform("happy", "never"),
        ],
        "edges": [
            {"id": "e1", "from": "start", "to": "soft"},
            {"id": "e2", "from": "soft", "to": "try"},
            {"id": "e3", "from": "try", "to": "recover", "port": "error"},
            {"id": "e4", "from": "try", "to": "happy"},
        ],
    }  # fmt: skip
    workflow = await weft.create_workflow(graph)
    run = await weft.run(workflow["id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["error"] is None
    nodes = await weft.nodes(run["id"])
    assert {k: v["status"] for k, v in nodes.items()} == {
        "start": "succeeded",
        "soft": "failed",
        "try": "failed",
        "recover": "succeeded",
        "happy": "skipped",
    }
    assert nodes["soft"]["error"]["type"] == "ConnectError"
    assert nodes["soft"]["output"] == {"error": nodes["soft"]["error"]}
    assert run["outputs"]["recover"] == {"result": "ConnectError"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"url": "http://x", "for_each": "not a template"}, "params.for_each"),
        ({"url": "http://x", "for_each": 5}, "params.for_each"),
        ({"url": "http://x", "concurrency": 0, "for_each": [1]}, "params.concurrency"),
        ({"url": "http://x", "on_error": "ignore"}, "params.on_error"),
        ({"url": "{{ nodes.later.data }}"}, "params.url"),
    ],
)
async def test_bad_flow_params_are_a_422_naming_node_and_field(
    weft: WeftServer, params: dict[str, Any], field: str
) -> None:
    graph = chain(
        {"id": "start", "type": "start"},
        {"id": "n", "type": "http.request", "params": params},
        {"id": "later", "type": "start"},
    )
    response = await weft.client.post("/workflows", json={"name": "bad", "graph": graph})
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert (detail["node_id"], detail["field"]) == ("n", field)


async def test_workflow_run_over_http_and_cancel_takes_the_child_along(weft: WeftServer) -> None:
    child = await weft.create_workflow(
        chain(
            {"id": "start", "type": "start"},
            {"id": "wait", "type": "delay", "params": {"seconds": "{{ trigger.wait }}"}},
        )
    )
    parent = await weft.create_workflow(
        chain(
            {
                "id": "call",
                "type": "workflow.run",
                "params": {"workflow_id": child["id"], "input": {"wait": "{{ trigger.wait }}"}},
            }
        )
    )
    # A quick child: its result is the node's output, and it names its parent
    run = await weft.run(parent["id"], {"wait": 0})
    assert run["status"] == "succeeded", run["error"]
    out = run["outputs"]["call"]
    assert out["status"] == "succeeded"
    assert out["outputs"]["wait"] == {"slept": 0}
    child_run = (await weft.client.get(f"/runs/{out['run_id']}")).json()
    assert child_run["parent_run_id"] == run["id"]
    assert child_run["trigger_type"] == "workflow"
    listed = (await weft.client.get(f"/workflows/{child['id']}/runs")).json()["items"]
    assert listed[0]["parent_run_id"] == run["id"]
    # A slow one: cancelling the parent cancels the child
    started = await weft.client.post(
        f"/workflows/{parent['id']}/run", json={"start_input": {"wait": 60}}
    )
    parent_id = started.json()["id"]

    async def child_running() -> bool:
        runs = (await weft.client.get(f"/workflows/{child['id']}/runs")).json()["items"]
        return any(r["parent_run_id"] == parent_id and r["status"] == "running" for r in runs)

    await wait_until(child_running)
    cancelled = await weft.client.post(f"/runs/{parent_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    runs = (await weft.client.get(f"/workflows/{child['id']}/runs")).json()["items"]
    (slow,) = [r for r in runs if r["parent_run_id"] == parent_id]
    assert (await weft.wait(slow["id"]))["status"] == "cancelled"


async def test_workflow_run_of_a_missing_workflow_is_refused_when_saved(
    weft: WeftServer,
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    graph = chain({"id": "call", "type": "workflow.run", "params": {"workflow_id": missing}})
    response = await weft.client.post("/workflows", json={"name": "p", "graph": graph})
    assert response.status_code == 422
    (problem,) = response.json()["error"]["details"]
    assert problem == {
        "code": "unknown_workflow",
        "message": f"node 'call': params.workflow_id: there is no workflow {missing}",
        "node_id": "call",
        "field": "params.workflow_id",
    }
    # A workflow may call itself (its depth is bounded when it runs), and a computed
    # target is looked up when it runs
    own = await weft.create_workflow(chain({"id": "a", "type": "start"}))
    itself = chain({"id": "call", "type": "workflow.run", "params": {"workflow_id": own["id"]}})
    saved = await weft.client.put(f"/workflows/{own['id']}", json={"name": "p", "graph": itself})
    assert saved.status_code == 200, saved.text
    computed = chain(
        {"id": "call", "type": "workflow.run", "params": {"workflow_id": "{{ trigger.id }}"}}
    )
    created = await weft.client.post("/workflows", json={"name": "c", "graph": computed})
    assert created.status_code == 201, created.text


async def test_workflow_run_of_a_workflow_deleted_since_fails_the_node_clearly(
    weft: WeftServer,
) -> None:
    child = await weft.create_workflow(chain({"id": "a", "type": "start"}))
    parent = await weft.create_workflow(
        chain({"id": "call", "type": "workflow.run", "params": {"workflow_id": child["id"]}})
    )
    assert (await weft.client.delete(f"/workflows/{child['id']}")).status_code == 204
    run = await weft.run(parent["id"])
    assert run["status"] == "failed"
    assert run["error"]["type"] == "WorkflowNotFoundError"
    assert child["id"] in run["error"]["message"]
