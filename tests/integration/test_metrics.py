"""GET /metrics: Prometheus's text format, counters that move by exactly what was done, route
templates for labels, no ids in any label, and the API token when one is set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.support import WeftServer, run_weft_server, wait_until
from web.app import create_app

pytestmark = pytest.mark.anyio

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

OK_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "shape", "type": "transform", "params": {"template": "{{ upstream.start.data }}"}},
    ],
    "edges": [{"id": "e1", "from": "start", "to": "shape"}],
}
# The transform reads a key the trigger does not have: the node fails, and so the run.
FAILING_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "shape", "type": "transform", "params": {"template": "{{ trigger.nope.x }}"}},
    ],
    "edges": [{"id": "e1", "from": "start", "to": "shape"}],
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(weft: WeftServer, **headers: str) -> tuple[str, Samples]:
    """GET /metrics, parsed: every sample by name and labels."""
    response = await weft.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_the_counters_move_by_what_was_done(weft: WeftServer) -> None:
    ok = await weft.create_workflow(OK_GRAPH, webhook_slug="metrics-ok")
    failing = await weft.create_workflow(FAILING_GRAPH)
    _, before = await scrape(weft)

    # Given two manual runs that succeed, one that fails, a webhook run and an unknown path
    for n in (1, 2):
        assert (await weft.run(ok["id"], {"n": n}))["status"] == "succeeded"
    assert (await weft.run(failing["id"], {}))["status"] == "failed"
    hooked = await weft.client.post("/hooks/metrics-ok?wait=30", json={"n": 3})
    assert hooked.status_code == 200, hooked.text
    assert (await weft.client.get(f"/nope/{ok['id']}")).status_code == 404
    ws = weft.url.replace("http://", "ws://") + f"/ws/workflows/{ok['id']}"
    async with connect(ws) as socket:
        with anyio.fail_after(10):
            assert orjson.loads(await socket.recv())["type"] == "snapshot"  # subscribed
        # When the metrics are read
        text, after = await scrape(weft)

    # Then the runs are counted by trigger and status
    assert delta(before, after, "weft_runs_started_total", trigger_type="manual") == 3
    assert delta(before, after, "weft_runs_started_total", trigger_type="webhook") == 1
    finished = "weft_runs_finished_total"
    assert delta(before, after, finished, status="succeeded", trigger_type="manual") == 2
    assert delta(before, after, finished, status="failed", trigger_type="manual") == 1
    assert delta(before, after, finished, status="succeeded", trigger_type="webhook") == 1
    assert delta(before, after, finished, status="cancelled", trigger_type="manual") == 0
    # the nodes by block type and how they ended
    nodes = "weft_node_duration_seconds_count"
    assert delta(before, after, nodes, block_type="start", status="succeeded") == 4
    assert delta(before, after, nodes, block_type="transform", status="succeeded") == 3
    assert delta(before, after, nodes, block_type="transform", status="failed") == 1
    assert value(after, "weft_node_duration_seconds_sum", block_type="start", status="succeeded")
    # the writer's commits, each with its rows and its time
    commits = delta(before, after, "weft_writer_commit_seconds_count")
    assert commits >= 4
    assert delta(before, after, "weft_writer_batch_rows_count") == commits
    assert delta(before, after, "weft_writer_batch_rows_sum") >= commits
    # the responses by route template and status
    responses = "weft_http_responses_total"
    run_route = {"method": "POST", "route": "/workflows/{workflow_id}/run"}
    assert delta(before, after, responses, **run_route, status="202") == 3
    assert delta(before, after, responses, method="GET", route="/runs/{run_id}", status="200") == 3
    hook_route = {"method": "POST", "route": "/hooks/{slug}"}
    assert delta(before, after, responses, **hook_route, status="200") == 1
    assert delta(before, after, responses, method="GET", route="unmatched", status="404") == 1
    durations = "weft_http_request_duration_seconds_count"
    assert delta(before, after, durations, **run_route) == 3
    # the gauges: nothing runs or waits now; one websocket follows a workflow
    assert value(after, "weft_runs_in_flight") == 0
    assert value(after, "weft_runs_pending") == 0
    assert value(after, "weft_live_subscribers", channel="workflow") == 1
    assert value(after, "weft_live_subscribers", channel="run") == 0

    # And every route label is a template of the app, and no label holds an id
    routes = {dict(labels)["route"] for _, labels in after if "route" in dict(labels)}
    app = create_app(weft.system.weft, weft.system.settings)
    templates = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r.rule) for r in app.url_map.iter_rules()}
    assert routes <= templates | {"unmatched"}
    assert {"/runs/{run_id}", "/hooks/{slug}", "/metrics", "unmatched"} <= routes
    assert UUID_TEXT.search(text) is None
    assert "metrics-ok" not in text  # nor a slug


async def test_pending_and_in_flight_runs_are_gauged(weft: WeftServer) -> None:
    graph = {"nodes": [{"id": "wait", "type": "delay", "params": {"seconds": 30}}], "edges": []}
    wf = await weft.create_workflow(graph, max_concurrency=1)
    # Given three runs of a workflow that runs one at a time
    runs = []
    for _ in range(3):
        response = await weft.client.post(f"/workflows/{wf['id']}/run", json={})
        assert response.status_code == 202, response.text
        runs.append(response.json()["id"])

    async def first_running() -> bool:
        return bool((await weft.client.get(f"/runs/{runs[0]}")).json()["status"] == "running")

    await wait_until(first_running)
    # When the metrics are read, Then one runs here and two wait in PostgreSQL
    _, samples = await scrape(weft)
    assert value(samples, "weft_runs_in_flight") == 1
    assert value(samples, "weft_runs_pending") == 2
    for run_id in runs:
        assert (await weft.client.post(f"/runs/{run_id}/cancel")).status_code == 200


async def test_metrics_need_the_api_token_when_one_is_set(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path / "d", weft_api_token="t0ken") as weft:
        refused = await weft.client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        _, samples = await scrape(weft, Authorization="Bearer t0ken")
        # the refusal itself was counted, under its route
        labels: dict[str, Any] = {"method": "GET", "route": "/metrics", "status": "401"}
        assert value(samples, "weft_http_responses_total", **labels) == 1
