"""Runs end to end through a real server and a real PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from tests.support import WeftServer, json_response, read_body, serve_asgi

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api_url() -> AsyncIterator[str]:
    """A local HTTP API: GET /post/1 answers JSON; /text answers text; /fail answers 500."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        if scope["path"] == "/post/1":
            await json_response(send, 200, b'{"id": 1, "title": "hello weft"}')
        elif scope["path"] == "/fail":
            await json_response(send, 500, b'{"error": "boom"}')
        elif scope["path"] == "/nul":
            await json_response(send, 200, b"a\x00b", "text/plain")
        else:
            await json_response(send, 200, b"plain text", "text/plain")

    async with serve_asgi(app) as url:
        yield url


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A graph whose nodes run one after another."""
    edges = [
        {"id": f"e{i}", "from": a["id"], "to": b["id"]}
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    ]
    return {"nodes": list(nodes), "edges": edges}


async def test_pipeline_runs_to_success_with_every_node_and_log_persisted(
    weft: WeftServer, api_url: str
) -> None:
    # Given start → http.request → transform → gcs.write → llm.simple
    graph = chain(
        {"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
        {"id": "fetch", "type": "http.request", "params": {"url": f"{api_url}/post/1"}},
        {
            "id": "shape",
            "type": "transform",
            "params": {
                "template": '{"title": {{ upstream.fetch.data.title | tojson }}, '
                '"who": {{ trigger.who | tojson }}}'
            },
        },
        {
            "id": "save",
            "type": "gcs.write",
            "params": {
                "path": "reports/{{ trigger.who }}.json",
                "content": "{{ upstream.shape.result }}",
            },
        },
        {
            "id": "llm",
            "type": "llm.simple",
            "params": {"prompt": "summarise {{ upstream.save.gcs_uri }}"},
        },
    )
    workflow = await weft.create_workflow(graph)
    assert workflow["graph"]["nodes"][0]["position"] == {"x": 0, "y": 0}

    # When it runs
    run = await weft.run(workflow["id"], {"who": "ada"})

    # Then every node succeeded, in order, with its input and output stored
    assert run["status"] == "succeeded", run
    assert run["progress"] == 100
    assert run["duration_ms"] >= 0
    assert run["duration"]
    nodes = await weft.nodes(run["id"])
    assert list(nodes) == ["start", "fetch", "shape", "save", "llm"]
    assert all(n["status"] == "succeeded" and n["attempt"] == 1 for n in nodes.values())
    assert nodes["start"]["output"] == {"data": {"who": "ada"}}
    assert nodes["fetch"]["output"]["status"] == 200
    assert nodes["fetch"]["output"]["data"] == {"id": 1, "title": "hello weft"}
    assert nodes["shape"]["input"]["upstream"]["fetch"]["data"]["title"] == "hello weft"
    assert nodes["shape"]["output"] == {"result": {"title": "hello weft", "who": "ada"}}
    save = nodes["save"]["output"]
    assert save["gcs_uri"].endswith("/reports/ada.json")
    assert save["size"] == len(b'{"title": "hello weft", "who": "ada"}')
    assert nodes["llm"]["output"] == {
        "text": f"SUMMARISE {save['gcs_uri'].upper()}",
        "model": "fallback-upper",
    }
    assert run["outputs"]["llm"] == nodes["llm"]["output"]

    # And a child never started before its parent finished
    for parent, child in [
        ("start", "fetch"),
        ("fetch", "shape"),
        ("shape", "save"),
        ("save", "llm"),
    ]:
        assert _ts(nodes[parent]["finished_at"]) <= _ts(nodes[child]["started_at"])

    # And the artifact downloads, and the logs are persisted in order
    artifact = await weft.client.get(f"/artifacts/{save['artifact_id']}")
    assert artifact.status_code == 200
    assert artifact.json() == {"title": "hello weft", "who": "ada"}
    assert artifact.headers["content-type"] == "application/json"
    logs = (await weft.client.get(f"/runs/{run['id']}/logs")).json()["items"]
    messages = [(line["node_id"], line["message"]) for line in logs]
    assert messages[0] == (None, "run started")
    assert messages[-1][0] is None
    assert messages[-1][1].startswith("run succeeded in")
    assert any(node == "fetch" and "→ 200" in message for node, message in messages)
    assert any(node == "save" and "wrote" in message for node, message in messages)
    assert [line["id"] for line in logs] == sorted(line["id"] for line in logs)
    fetch_logs = await weft.client.get(f"/runs/{run['id']}/logs?node_id=fetch")
    assert {line["node_id"] for line in fetch_logs.json()["items"]} == {"fetch"}


async def test_http_error_status_does_not_fail_the_node(weft: WeftServer, api_url: str) -> None:
    workflow = await weft.create_workflow(
        chain({"id": "fetch", "type": "http.request", "params": {"url": f"{api_url}/fail"}})
    )
    run = await weft.run(workflow["id"])
    assert run["status"] == "succeeded"
    assert run["outputs"]["fetch"]["status"] == 500
    assert run["outputs"]["fetch"]["data"] == {"error": "boom"}


async def test_failing_node_fails_fast(weft: WeftServer) -> None:
    # Given start → {boom (fails at once), slow (delay 30 s) → after}, and boom → never
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "boom", "type": "http.request", "params": {"url": "http://127.0.0.1:9/x"}},
            {"id": "slow", "type": "delay", "params": {"seconds": 30}},
            {"id": "after", "type": "transform", "params": {"template": "x"}},
            {"id": "never", "type": "transform", "params": {"template": "y"}},
        ],
        "edges": [
            {"id": "a", "from": "start", "to": "boom"},
            {"id": "b", "from": "start", "to": "slow"},
            {"id": "c", "from": "slow", "to": "after"},
            {"id": "d", "from": "boom", "to": "never"},
        ],
    }
    workflow = await weft.create_workflow(graph)

    # When it runs
    run = await weft.run(workflow["id"])

    # Then the run failed with boom's error, slow was cancelled, the rest skipped
    assert run["status"] == "failed"
    assert run["error"]["node_id"] == "boom"
    assert run["error"]["type"] == "ConnectError"
    assert run["error"]["message"]
    nodes = await weft.nodes(run["id"])
    assert {k: v["status"] for k, v in nodes.items()} == {
        "start": "succeeded",
        "boom": "failed",
        "slow": "cancelled",
        "after": "skipped",
        "never": "skipped",
    }
    assert nodes["boom"]["error"]["type"] == "ConnectError"
    assert nodes["slow"]["finished_at"] is not None
    # partial outputs are kept
    assert run["outputs"] == {"start": {"data": {}}}
    assert run["duration_ms"] < 30_000


async def test_template_error_fails_the_node_with_its_type(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain(
            {"id": "start", "type": "start"},
            {"id": "t", "type": "transform", "params": {"template": "{{ trigger.missing }}"}},
        )
    )
    run = await weft.run(workflow["id"], {"present": 1})
    assert run["status"] == "failed"
    assert run["error"] == {
        "node_id": "t",
        "type": "UndefinedError",
        "message": "'missing' is undefined here (the keys there: present)",
    }


async def test_templated_param_failing_its_schema_after_rendering(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain({"id": "d", "type": "delay", "params": {"seconds": "{{ trigger.n }}"}})
    )
    ok = await weft.run(workflow["id"], {"n": 0})
    assert ok["status"] == "succeeded"
    assert ok["outputs"]["d"] == {"slept": 0.0}
    bad = await weft.run(workflow["id"], {"n": "soon"})
    assert bad["status"] == "failed"
    assert bad["error"]["type"] == "ValidationError"


async def test_if_skips_the_untaken_side(weft: WeftServer) -> None:
    # Given start → if → (true) yes → yes2, (false) no → no2, and join after both
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "check", "type": "if", "params": {"condition": "trigger.n > 10"}},
            {"id": "yes", "type": "transform", "params": {"template": "big"}},
            {
                "id": "yes2",
                "type": "transform",
                "params": {"template": "{{ upstream.yes.result }}!"},
            },
            {"id": "no", "type": "transform", "params": {"template": "small"}},
            {"id": "no2", "type": "transform", "params": {"template": "{{ upstream.no.result }}!"}},
            {"id": "join", "type": "transform", "params": {"template": "{{ upstream | tojson }}"}},
        ],
        "edges": [
            {"id": "e1", "from": "start", "to": "check"},
            {"id": "e2", "from": "check", "to": "yes", "port": "true"},
            {"id": "e3", "from": "check", "to": "no", "port": "false"},
            {"id": "e4", "from": "yes", "to": "yes2"},
            {"id": "e5", "from": "no", "to": "no2"},
            {"id": "e6", "from": "yes2", "to": "join"},
            {"id": "e7", "from": "no2", "to": "join"},
        ],
    }
    workflow = await weft.create_workflow(graph)

    big = await weft.run(workflow["id"], {"n": 42})
    assert big["status"] == "succeeded"
    statuses = {k: v["status"] for k, v in (await weft.nodes(big["id"])).items()}
    assert statuses == {
        "start": "succeeded",
        "check": "succeeded",
        "yes": "succeeded",
        "yes2": "succeeded",
        "no": "skipped",
        "no2": "skipped",
        "join": "succeeded",
    }
    assert big["outputs"]["check"] == {"port": "true", "value": True}
    assert big["outputs"]["join"] == {"result": {"yes2": {"result": "big!"}}}

    small = await weft.run(workflow["id"], {"n": 1})
    statuses = {k: v["status"] for k, v in (await weft.nodes(small["id"])).items()}
    assert statuses["yes"] == statuses["yes2"] == "skipped"
    assert statuses["no2"] == "succeeded"
    assert small["outputs"]["join"] == {"result": {"no2": {"result": "small!"}}}


async def test_fan_out_runs_concurrently(weft: WeftServer) -> None:
    # Given start → 5 delay nodes → join
    width = 5
    nodes = [{"id": "start", "type": "start"}]
    nodes += [{"id": f"d{i}", "type": "delay", "params": {"seconds": 0.3}} for i in range(width)]
    nodes += [{"id": "join", "type": "transform", "params": {"template": "done"}}]
    edges = [{"id": f"a{i}", "from": "start", "to": f"d{i}"} for i in range(width)]
    edges += [{"id": f"b{i}", "from": f"d{i}", "to": "join"} for i in range(width)]
    workflow = await weft.create_workflow({"nodes": nodes, "edges": edges})

    run = await weft.run(workflow["id"])

    # Then every pair of delay intervals overlaps, as stored
    assert run["status"] == "succeeded"
    stored = await weft.nodes(run["id"])
    intervals = [
        (_ts(stored[f"d{i}"]["started_at"]), _ts(stored[f"d{i}"]["finished_at"]))
        for i in range(width)
    ]
    latest_start = max(start for start, _ in intervals)
    earliest_end = min(end for _, end in intervals)
    assert latest_start < earliest_end, intervals
    assert _ts(stored["join"]["started_at"]) >= max(end for _, end in intervals)


async def test_webhook_starts_a_run_with_the_body_as_payload(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain({"id": "start", "type": "start"}), webhook_slug="orders-in"
    )
    assert workflow["webhook_url"] == "/hooks/orders-in"

    response = await weft.client.post("/hooks/orders-in", json={"order": 7})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "pending"
    assert accepted["trigger_type"] == "webhook"
    run = await weft.wait(accepted["id"])
    assert run["status"] == "succeeded"
    assert run["trigger_payload"] == {"order": 7}
    assert run["outputs"]["start"] == {"data": {"order": 7}}

    wrapped = await weft.client.post("/hooks/orders-in", json={"payload": [1, 2]})
    run = await weft.wait(wrapped.json()["id"])
    assert run["outputs"]["start"] == {"data": [1, 2]}

    empty = await weft.client.post("/hooks/orders-in")
    run = await weft.wait(empty.json()["id"])
    assert run["outputs"]["start"] == {"data": {}}


async def test_a_batch_starts_every_run_in_order(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain(
            {"id": "start", "type": "start"},
            {
                "id": "twice",
                "type": "transform",
                "params": {"template": "{{ upstream.start.data.n * 2 }}"},
            },
        )
    )
    url = f"/workflows/{workflow['id']}/runs/batch"
    response = await weft.client.post(
        url, json={"runs": [{"start_input": {"n": n}} for n in range(5)]}
    )
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [r["trigger_payload"] for r in items] == [{"n": n} for n in range(5)]
    assert {r["status"] for r in items} <= {"pending", "running"}
    finished = [await weft.wait(r["id"]) for r in items]
    assert [r["status"] for r in finished] == ["succeeded"] * 5
    assert [r["outputs"]["twice"] == {"result": 2 * n} for n, r in enumerate(finished)] == [
        True
    ] * 5
    nodes = await weft.nodes(items[0]["id"])
    assert {n: node["status"] for n, node in nodes.items()} == {
        "start": "succeeded",
        "twice": "succeeded",
    }
    history = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]
    assert [r["id"] for r in history] == [r["id"] for r in reversed(items)]  # newest first

    # Payloads of every JSON shape (a list must not be taken for a sub-array)
    shapes: list[Any] = [[], [1, [2]], "text", 3.5, None, {"a": [{}]}]
    start_only = await weft.create_workflow(chain({"id": "start", "type": "start"}))
    response = await weft.client.post(
        f"/workflows/{start_only['id']}/runs/batch",
        json={"runs": [{"start_input": shape} for shape in shapes]},
    )
    assert response.status_code == 202, response.text
    expected = [{} if shape is None else shape for shape in shapes]
    assert [r["trigger_payload"] for r in response.json()["items"]] == expected
    finished = [await weft.wait(r["id"]) for r in response.json()["items"]]
    assert [r["outputs"]["start"]["data"] for r in finished] == expected


async def test_bad_batches_start_nothing(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(chain({"id": "start", "type": "start"}))
    url = f"/workflows/{workflow['id']}/runs/batch"
    for body, status in (
        ({"runs": []}, 422),
        ({"runs": [{}] * 1001}, 422),
        ({"runs": [{"start_input": 1, "extra": 2}]}, 422),
        ({"runs": [1]}, 422),
        ({"run": [{}]}, 422),
        ([{}], 422),
    ):
        response = await weft.client.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert "error" in response.json()
    assert (await weft.client.post(url)).status_code == 400
    keyed = await weft.client.post(url, json={"runs": [{}]}, headers={"Idempotency-Key": "k"})
    assert keyed.status_code == 400
    assert keyed.json()["error"]["code"] == "bad_idempotency_key"
    unknown = await weft.client.post(
        "/workflows/00000000-0000-4000-8000-000000000000/runs/batch", json={"runs": [{}]}
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "workflow_not_found"
    assert (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"] == []


async def test_run_history_is_newest_first_and_paged(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(chain({"id": "start", "type": "start"}))
    other = await weft.create_workflow(chain({"id": "start", "type": "start"}))
    ids = [(await weft.run(workflow["id"], {"i": i}))["id"] for i in range(3)]
    other_run = await weft.run(other["id"])

    first = (await weft.client.get(f"/workflows/{workflow['id']}/runs?limit=2")).json()
    assert [r["id"] for r in first["items"]] == [ids[2], ids[1]]
    assert first["next_before"] == ids[1]
    second = (
        await weft.client.get(f"/workflows/{workflow['id']}/runs?limit=2&before={ids[1]}")
    ).json()
    assert [r["id"] for r in second["items"]] == [ids[0]]
    assert second["next_before"] is None

    everything = (await weft.client.get("/runs")).json()["items"]
    assert [r["id"] for r in everything] == [other_run["id"], ids[2], ids[1], ids[0]]


async def test_graph_put_applies_to_new_runs(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain({"id": "t", "type": "transform", "params": {"template": "one"}})
    )
    first = await weft.run(workflow["id"])
    assert first["outputs"]["t"] == {"result": "one"}

    response = await weft.client.put(
        f"/workflows/{workflow['id']}",
        json={
            "name": "renamed",
            "graph": chain({"id": "t", "type": "transform", "params": {"template": "two"}}),
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_slug"] == workflow["webhook_slug"]
    second = await weft.run(workflow["id"])
    assert second["outputs"]["t"] == {"result": "two"}


async def test_run_in_flight_finishes_on_the_graph_it_started_with(weft: WeftServer) -> None:
    workflow = await weft.create_workflow(
        chain(
            {"id": "wait", "type": "delay", "params": {"seconds": 0.5}},
            {"id": "t", "type": "transform", "params": {"template": "old"}},
        )
    )
    started = await weft.client.post(f"/workflows/{workflow['id']}/run", json={})
    run_id = started.json()["id"]
    response = await weft.client.put(
        f"/workflows/{workflow['id']}",
        json={
            "name": "new",
            "graph": chain({"id": "t", "type": "transform", "params": {"template": "new"}}),
        },
    )
    assert response.status_code == 200
    run = await weft.wait(run_id)
    assert run["outputs"]["t"] == {"result": "old"}
    assert set(run["outputs"]) == {"wait", "t"}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_nul_characters_never_reach_postgresql(weft: WeftServer, api_url: str) -> None:
    # A block's output with NUL is stored with U+FFFD in its place
    workflow = await weft.create_workflow(
        chain({"id": "fetch", "type": "http.request", "params": {"url": f"{api_url}/nul"}})
    )
    run = await weft.run(workflow["id"])
    assert run["status"] == "succeeded", run
    assert run["outputs"]["fetch"]["data"] == "a\ufffdb"

    # A request body with NUL is refused, and nothing is stored
    for path, body in (
        ("/workflows", {"name": "a\u0000", "graph": chain({"id": "s", "type": "start"})}),
        (f"/workflows/{workflow['id']}/run", {"start_input": {"k": "\u0000"}}),
        (f"/hooks/{workflow['webhook_slug']}", {"\u0000": 1}),
    ):
        response = await weft.client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
    assert (await weft.client.get("/workflows")).json()["total"] == 1
    assert len((await weft.client.get("/runs")).json()["items"]) == 1
