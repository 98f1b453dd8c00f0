"""Bad input: the right status, the JSON error shape, and nothing stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support import WeftServer

pytestmark = pytest.mark.anyio

GOOD_GRAPH = {"nodes": [{"id": "start", "type": "start"}], "edges": []}


def error_of(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the JSON error shape and status; return the error body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def workflow_count(weft: WeftServer) -> int:
    total: int = (await weft.client.get("/workflows")).json()["total"]
    return total


async def test_malformed_json_is_400(weft: WeftServer) -> None:
    for path in ("/workflows", "/validate-graph"):
        response = await weft.client.post(
            path, content=b'{"name": "x", "graph": ', headers={"content-type": "application/json"}
        )
        error_of(response, 400, "malformed_json")
    response = await weft.client.post("/workflows", content=b"\xff\xfe{bad utf-8}")
    error_of(response, 400, "malformed_json")
    wf = await weft.create_workflow(GOOD_GRAPH)
    response = await weft.client.post(f"/workflows/{wf['id']}/run", content=b"{nope")
    error_of(response, 400, "malformed_json")
    response = await weft.client.post(f"/hooks/{wf['webhook_slug']}", content=b"[1,")
    error_of(response, 400, "malformed_json")
    assert await workflow_count(weft) == 1
    assert (await weft.client.get("/runs")).json()["items"] == []


async def test_missing_body_is_400(weft: WeftServer) -> None:
    error_of(await weft.client.post("/workflows"), 400, "missing_body")


INVALID_GRAPHS: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "duplicate node ids",
        {"nodes": [{"id": "a", "type": "start"}, {"id": "a", "type": "start"}], "edges": []},
        [{"code": "duplicate_node_id", "node_id": "a"}],
    ),
    (
        "duplicate edge ids",
        {
            "nodes": [{"id": "a", "type": "start"}, {"id": "b", "type": "start"}],
            "edges": [{"id": "e", "from": "a", "to": "b"}, {"id": "e", "from": "a", "to": "b"}],
        },
        [{"code": "duplicate_edge_id", "edge_id": "e"}],
    ),
    (
        "edge to a missing node",
        {"nodes": [{"id": "a", "type": "start"}], "edges": [{"id": "e", "from": "a", "to": "zz"}]},
        [{"code": "unknown_node", "edge_id": "e"}],
    ),
    (
        "self-loop",
        {"nodes": [{"id": "a", "type": "start"}], "edges": [{"id": "e", "from": "a", "to": "a"}]},
        [{"code": "self_loop", "edge_id": "e", "node_id": "a"}],
    ),
    (
        "cycle",
        {
            "nodes": [{"id": n, "type": "start"} for n in "abc"],
            "edges": [
                {"id": "ab", "from": "a", "to": "b"},
                {"id": "bc", "from": "b", "to": "c"},
                {"id": "ca", "from": "c", "to": "a"},
            ],
        },
        [{"code": "cycle", "node_id": "a"}],
    ),
    (
        "unknown block type",
        {"nodes": [{"id": "a", "type": "teleport"}], "edges": []},
        [{"code": "unknown_block", "node_id": "a"}],
    ),
    (
        "params failing the block's schema",
        {"nodes": [{"id": "d", "type": "delay", "params": {"seconds": "soon"}}], "edges": []},
        [{"code": "invalid_params", "node_id": "d", "field": "params.seconds"}],
    ),
    (
        "a template reading a name nothing gives it",
        {
            "nodes": [
                {"id": "h", "type": "http.request", "params": {"url": "https://x/{{ itme }}"}}
            ],
            "edges": [],
        },
        [{"code": "invalid_reference", "node_id": "h", "field": "params.url"}],
    ),
]


@pytest.mark.parametrize(
    ("graph", "expected"),
    [(g, e) for _, g, e in INVALID_GRAPHS],
    ids=[n for n, _, _ in INVALID_GRAPHS],
)
async def test_invalid_graph_is_422_everywhere(
    weft: WeftServer, graph: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    existing = await weft.create_workflow(GOOD_GRAPH)
    responses = [
        await weft.client.post("/validate-graph", json=graph),
        await weft.client.post("/workflows", json={"name": "bad", "graph": graph}),
        await weft.client.put(f"/workflows/{existing['id']}", json={"name": "bad", "graph": graph}),
    ]
    for response in responses:
        error = error_of(response, 422, "invalid_graph")
        for want in expected:
            assert any(want.items() <= problem.items() for problem in error["details"]), (
                want,
                error["details"],
            )
    # Nothing was created and the existing workflow is untouched
    assert await workflow_count(weft) == 1
    stored = (await weft.client.get(f"/workflows/{existing['id']}")).json()
    assert stored["graph"] == GOOD_GRAPH
    assert stored["name"] == "test"


async def test_every_problem_is_listed_at_once(weft: WeftServer) -> None:
    graph = {
        "nodes": [
            {"id": "a", "type": "start"},
            {"id": "a", "type": "start"},
            {"id": "x", "type": "nope"},
            {"id": "d", "type": "delay", "params": {}},
            {"id": "h", "type": "http.request", "params": {"url": "ftp://x", "extra": 1}},
        ],
        "edges": [
            {"id": "e1", "from": "a", "to": "ghost"},
            {"id": "e1", "from": "d", "to": "d"},
        ],
    }
    error = error_of(await weft.client.post("/validate-graph", json=graph), 422, "invalid_graph")
    codes = sorted((p["code"], p.get("node_id"), p.get("edge_id")) for p in error["details"])
    assert codes == sorted(
        [
            ("duplicate_node_id", "a", None),
            ("duplicate_edge_id", None, "e1"),
            ("unknown_node", None, "e1"),
            ("self_loop", "d", "e1"),
            ("unknown_block", "x", None),
            ("invalid_params", "d", None),
            ("invalid_params", "h", None),
            ("invalid_params", "h", None),
        ]
    )


async def test_graph_of_the_wrong_shape_is_422(weft: WeftServer) -> None:
    for graph in ({"nodes": "many"}, {"nodes": [{"type": "start"}]}, {"edges": [{"id": "e"}]}):
        response = await weft.client.post("/workflows", json={"name": "x", "graph": graph})
        error = error_of(response, 422, "invalid_graph")
        assert all(d["field"].startswith("graph") for d in error["details"])
        error_of(await weft.client.post("/validate-graph", json=graph), 422)
    assert await workflow_count(weft) == 0


async def test_invalid_workflow_fields_are_422(weft: WeftServer) -> None:
    for body in (
        {"graph": GOOD_GRAPH},
        {"name": "", "graph": GOOD_GRAPH},
        {"name": "x", "webhook_slug": "Has Spaces", "graph": GOOD_GRAPH},
        {"name": "x", "graph": GOOD_GRAPH, "surprise": True},
        ["not", "an", "object"],
    ):
        error = error_of(await weft.client.post("/workflows", json=body), 422, "invalid_request")
        assert error["details"]
    assert await workflow_count(weft) == 0


async def test_valid_graph_answers_its_order(weft: WeftServer) -> None:
    graph = {
        "nodes": [{"id": "b", "type": "start"}, {"id": "a", "type": "start"}],
        "edges": [{"id": "e", "from": "a", "to": "b"}],
    }
    response = await weft.client.post("/validate-graph", json=graph)
    assert response.status_code == 200
    assert response.json() == {"valid": True, "order": ["a", "b"]}


async def test_unknown_ids_are_404(weft: WeftServer) -> None:
    missing = uuid.uuid4()
    for method, path, code in (
        ("GET", f"/workflows/{missing}", "workflow_not_found"),
        ("PUT", f"/workflows/{missing}", "workflow_not_found"),
        ("DELETE", f"/workflows/{missing}", "workflow_not_found"),
        ("POST", f"/workflows/{missing}/run", "workflow_not_found"),
        ("GET", f"/workflows/{missing}/runs", "workflow_not_found"),
        ("GET", f"/runs/{missing}", "run_not_found"),
        ("GET", f"/runs/{missing}/nodes", "run_not_found"),
        ("GET", f"/runs/{missing}/logs", "run_not_found"),
        ("GET", f"/artifacts/{missing}", "artifact_not_found"),
        ("POST", "/hooks/no-such-slug", "hook_not_found"),
        ("GET", "/workflows/not-a-uuid", "not_found"),
        ("GET", "/no/such/route", "not_found"),
    ):
        body = {"name": "x", "graph": GOOD_GRAPH} if method == "PUT" else None
        response = await weft.client.request(method, path, json=body)
        error_of(response, 404, code)
    assert await workflow_count(weft) == 0


async def test_duplicate_webhook_slug_is_409(weft: WeftServer) -> None:
    first = await weft.create_workflow(GOOD_GRAPH, webhook_slug="taken")
    second = await weft.create_workflow(GOOD_GRAPH, name="second")
    response = await weft.client.post(
        "/workflows", json={"name": "dup", "webhook_slug": "taken", "graph": GOOD_GRAPH}
    )
    error_of(response, 409, "webhook_slug_taken")
    response = await weft.client.put(
        f"/workflows/{second['id']}",
        json={"name": "steal", "webhook_slug": "taken", "graph": GOOD_GRAPH},
    )
    error_of(response, 409, "webhook_slug_taken")
    assert await workflow_count(weft) == 2
    stored = (await weft.client.get(f"/workflows/{second['id']}")).json()
    assert stored["name"] == "second"
    assert stored["webhook_slug"] == second["webhook_slug"]
    assert (await weft.client.get(f"/workflows/{first['id']}")).json()["webhook_slug"] == "taken"


async def test_body_over_the_limit_is_413(weft: WeftServer) -> None:
    limit = weft.system.settings.weft_max_body_bytes
    big = {"name": "x", "graph": GOOD_GRAPH, "pad": "y" * limit}
    error_of(await weft.client.post("/workflows", json=big), 413)
    wf = await weft.create_workflow(GOOD_GRAPH)
    error_of(await weft.client.post(f"/hooks/{wf['webhook_slug']}", json=big), 413)
    assert await workflow_count(weft) == 1
    assert (await weft.client.get("/runs")).json()["items"] == []


async def test_bad_paging_is_422(weft: WeftServer) -> None:
    for path in ("/runs?limit=0", "/runs?limit=abc", "/runs?before=nope", "/workflows?offset=-1"):
        error_of(await weft.client.get(path), 422, "invalid_request")


async def test_bad_run_body_is_422(weft: WeftServer) -> None:
    wf = await weft.create_workflow(GOOD_GRAPH)
    response = await weft.client.post(f"/workflows/{wf['id']}/run", json={"start": 1})
    error_of(response, 422, "invalid_request")
    assert (await weft.client.get("/runs")).json()["items"] == []


async def test_delete_workflow(weft: WeftServer) -> None:
    wf = await weft.create_workflow(GOOD_GRAPH)
    run = await weft.run(wf["id"])
    response = await weft.client.delete(f"/workflows/{wf['id']}")
    assert response.status_code == 204
    error_of(await weft.client.get(f"/workflows/{wf['id']}"), 404)
    error_of(await weft.client.get(f"/runs/{run['id']}"), 404)


async def test_delete_of_a_busy_workflow_is_409(weft: WeftServer) -> None:
    wf = await weft.create_workflow(
        {"nodes": [{"id": "d", "type": "delay", "params": {"seconds": 0.5}}], "edges": []}
    )
    started = (await weft.client.post(f"/workflows/{wf['id']}/run")).json()
    error_of(await weft.client.delete(f"/workflows/{wf['id']}"), 409, "workflow_busy")
    run = await weft.wait(started["id"])
    assert run["status"] == "succeeded"
    assert (await weft.client.delete(f"/workflows/{wf['id']}")).status_code == 204
