"""What an editor's "retry" and "execute step" buttons call: re-runs that copy what need not
run again (a counter server proves it), and a node tried on its own, without a run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tests.integration.test_runs import chain
from tests.support import Hits, WeftServer, json_response, read_body, serve_asgi

pytestmark = pytest.mark.anyio


class Peer:
    """Counts calls per path; /slow takes 2 s while `slow` is set."""

    def __init__(self) -> None:
        self.hits = Hits()
        self.slow = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        self.hits.add(scope["path"])
        if scope["path"] == "/slow" and self.slow:
            await anyio.sleep(2)
        await json_response(send, 200, b'{"ok": true}')


@pytest.fixture
async def peer() -> AsyncIterator[tuple[str, Peer]]:
    app = Peer()
    async with serve_asgi(app) as url:
        yield url, app


def fetch(node_id: str, url: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "http.request", "params": {"url": url, **params}}


async def test_a_rerun_runs_only_what_failed_and_what_follows(
    weft: WeftServer, peer: tuple[str, Peer]
) -> None:
    url, app = peer
    workflow = await weft.create_workflow(
        chain(
            fetch("a", url + "/a"),
            fetch("b", url + "/slow", timeout_s=0.3),
            fetch("c", url + "/c"),
        )
    )
    first = await weft.run(workflow["id"], {"n": 1})
    assert first["status"] == "failed"
    assert first["error"]["type"] == "NodeTimeoutError"
    # Mended: a re-run without `from` starts at the failed node
    app.slow = False
    answer = await weft.client.post(f"/runs/{first['id']}/rerun")
    assert answer.status_code == 202, answer.text
    assert answer.json()["rerun_of"] == first["id"]
    second = await weft.wait(answer.json()["id"])
    assert second["status"] == "succeeded", second["error"]
    assert second["trigger_type"] == "rerun"
    assert second["trigger_payload"] == {"n": 1}
    assert app.hits["/a"] == 1  # copied, not executed
    assert app.hits["/c"] == 1
    nodes = await weft.nodes(second["id"])
    assert nodes["a"]["status"] == "succeeded"
    assert nodes["a"]["attempt"] == 0
    assert nodes["a"]["output"] == (await weft.nodes(first["id"]))["a"]["output"]
    # From a node: it and what follows run again; the rest is copied
    answer = await weft.client.post(f"/runs/{second['id']}/rerun", json={"from": "c"})
    third = await weft.wait(answer.json()["id"])
    assert third["status"] == "succeeded"
    assert (app.hits["/a"], app.hits["/slow"], app.hits["/c"]) == (1, 2, 2)
    async with weft.client.stream("GET", f"/runs/{third['id']}/events?after=0") as response:
        text = (await response.aread()).decode()
    assert text.count('"copied_from":"' + second["id"] + '"') == 2


async def test_rerun_refuses_what_it_cannot_do(weft: WeftServer, peer: tuple[str, Peer]) -> None:
    url, app = peer
    app.slow = False
    workflow = await weft.create_workflow(chain(fetch("a", url + "/a")))
    done = await weft.run(workflow["id"])
    cases = [
        (f"/runs/{done['id']}/rerun", {"from": "nope"}, 422, "invalid_request"),
        (f"/runs/{done['id']}/rerun", {}, 409, "nothing_to_rerun"),
        (f"/runs/{done['id']}/rerun", {"from": 3}, 422, "invalid_request"),
        (f"/runs/{done['id']}/rerun", {"fromm": "a"}, 422, "invalid_request"),
        ("/runs/00000000-0000-4000-8000-000000000000/rerun", {}, 404, "run_not_found"),
    ]
    for path, body, status, code in cases:
        response = await weft.client.post(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    (detail,) = (await weft.client.post(f"/runs/{done['id']}/rerun", json={"from": "nope"})).json()[
        "error"
    ]["details"]
    assert detail["field"] == "from"
    # A run still going is a conflict
    slow = await weft.create_workflow(chain({"id": "d", "type": "delay", "params": {"seconds": 5}}))
    started = (await weft.client.post(f"/workflows/{slow['id']}/run", json={})).json()
    response = await weft.client.post(f"/runs/{started['id']}/rerun", json={"from": "d"})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "run_not_finished")
    await weft.client.post(f"/runs/{started['id']}/cancel")


async def test_a_node_is_tried_on_its_own_without_a_run(weft: WeftServer) -> None:
    shape = "{{ upstream.start.data.x + nodes.start.data.x + trigger.y }}"
    workflow = await weft.create_workflow(
        chain(
            {"id": "start", "type": "start"},
            {"id": "shape", "type": "transform", "params": {"template": shape}},
            {
                "id": "each",
                "type": "transform",
                "params": {"template": "{{ item * 2 }}", "for_each": [1, 2]},
            },
        )
    )
    base = f"/workflows/{workflow['id']}/nodes"
    data = {"upstream": {"start": {"data": {"x": 2}}}, "nodes": {"start": {"data": {"x": 3}}}}
    response = await weft.client.post(f"{base}/shape/test", json={**data, "trigger": {"y": 4}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["output"], body["error"]) == ("succeeded", {"result": 9}, None)
    assert body["duration_ms"] >= 0
    # A template error is the node's failure, told plainly
    body = (await weft.client.post(f"{base}/shape/test", json={})).json()
    assert body["status"] == "failed"
    assert "'start' is undefined" in body["error"]["message"]
    # for_each runs every item
    body = (await weft.client.post(f"{base}/each/test")).json()
    assert body["output"] == {"items": [{"result": 2}, {"result": 4}], "count": 2}
    # Nothing was recorded
    runs = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]
    assert runs == []
    for path, body, status in [
        (f"{base}/ghost/test", {}, 404),
        ("/workflows/00000000-0000-4000-8000-000000000000/nodes/shape/test", {}, 404),
        (f"{base}/shape/test", {"upstream": []}, 422),
        (f"{base}/shape/test", {"other": 1}, 422),
    ]:
        response = await weft.client.post(path, json=body)
        assert response.status_code == status, (path, body, response.text)
