"""The respond block: a waiting webhook or run call gets the answer the workflow sets, as soon
as its respond node has run, while the rest of the run goes on; on any process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_bad_input import error_of
from tests.support import WeftServer, run_weft_server

pytestmark = pytest.mark.anyio


def respond_then_wait(respond: dict[str, Any], slug: str, seconds: float = 3) -> dict[str, Any]:
    return {
        "name": "answers early",
        "webhook_slug": slug,
        "graph": {
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "answer", "type": "respond", "params": respond},
                {"id": "later", "type": "delay", "params": {"seconds": seconds}},
            ],
            "edges": [
                {"id": "e1", "from": "start", "to": "answer"},
                {"id": "e2", "from": "answer", "to": "later"},
            ],
        },
    }


async def answered_before_the_end(caller: WeftServer, reader: WeftServer, slug: str) -> None:
    response = await caller.client.post(f"/hooks/{slug}?wait=20", json={"order": 7})
    assert response.status_code == 201, response.text
    assert response.json() == {"accepted": 7}
    assert response.headers["x-order"] == "7"
    assert response.headers["content-type"].startswith("application/json")
    run_id = response.headers["location"].rsplit("/", 1)[-1]
    run = (await reader.client.get(f"/runs/{run_id}")).json()
    assert run["status"] == "running"  # the rest goes on in the background
    assert (await reader.wait(run_id))["status"] == "succeeded"


RESPOND = {
    "status": 201,
    "body": {"accepted": "{{ trigger.order }}"},
    "headers": {"X-Order": "{{ trigger.order }}"},
}


async def test_a_webhook_gets_the_respond_nodes_answer_before_the_run_ends(
    weft: WeftServer,
) -> None:
    created = await weft.client.post("/workflows", json=respond_then_wait(RESPOND, "early"))
    assert created.status_code == 201, created.text
    await answered_before_the_end(weft, weft, "early")


async def test_the_answer_comes_from_another_process(database_url: str, tmp_path: Path) -> None:
    # B serves requests only (WEFT_MAX_RUNS=0): A executes every run
    async with (
        run_weft_server(database_url, tmp_path / "a") as a,
        run_weft_server(database_url, tmp_path / "b", weft_max_runs=0) as b,
    ):
        created = await b.client.post("/workflows", json=respond_then_wait(RESPOND, "far", 1))
        assert created.status_code == 201
        await answered_before_the_end(b, a, "far")


async def test_a_text_body_and_a_run_call(weft: WeftServer) -> None:
    spec = respond_then_wait({"status": 202, "body": "thanks {{ trigger.who }}"}, "text", 0)
    workflow = (await weft.client.post("/workflows", json=spec)).json()
    response = await weft.client.post(
        f"/workflows/{workflow['id']}/run?wait=10", json={"start_input": {"who": "ada"}}
    )
    assert response.status_code == 202
    assert response.text == "thanks ada"
    assert response.headers["content-type"].startswith("text/plain")


async def test_without_respond_or_wait_the_answer_is_the_run(weft: WeftServer) -> None:
    spec = respond_then_wait(RESPOND, "nowait", 0)
    await weft.client.post("/workflows", json=spec)
    response = await weft.client.post("/hooks/nowait", json={"order": 1})
    assert response.status_code == 202
    assert response.json()["status"] == "pending"


@pytest.mark.parametrize(
    ("respond", "field"),
    [
        ({"status": 199}, "params.status"),
        ({"status": 600}, "params.status"),
        ({"headers": {"Transfer-Encoding": "chunked"}}, "params.headers"),
        ({"headers": {"Bad Name": "x"}}, "params.headers"),
        ({"headers": {"X-Ok": "a\r\nSet-Cookie: x=1"}}, "params.headers"),
    ],
)
async def test_unsafe_answers_are_refused_when_saved(
    weft: WeftServer, respond: dict[str, Any], field: str
) -> None:
    response = await weft.client.post("/workflows", json=respond_then_wait(respond, "bad"))
    (detail,) = error_of(response, 422, "invalid_graph")["details"]
    assert (detail["node_id"], detail["field"]) == ("answer", field)
