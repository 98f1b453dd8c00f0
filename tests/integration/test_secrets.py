"""Secrets: stored encrypted, used by runs as {{ secrets.NAME }}, and never shown in clear —
not in any answer, stored row, log line, event, or the server's own log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet

from tests.integration.test_bad_input import error_of
from tests.support import WeftServer, json_response, read_body, run_weft_server, serve_asgi

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Val-4f9a2"
SHOW = "token={{ secrets.TOKEN }}; echoed={{ upstream.call.data | tojson }}"


@pytest.fixture
async def keyed(database_url: str, tmp_path: Path) -> AsyncIterator[WeftServer]:
    key = Fernet.generate_key().decode()
    async with run_weft_server(database_url, tmp_path / "data", weft_secret_key=key) as server:
        yield server


async def test_secrets_are_stored_listed_changed_and_deleted(keyed: WeftServer) -> None:
    created = await keyed.client.post("/secrets", json={"name": "API_KEY", "value": SECRET})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"name", "created_at", "updated_at"}
    error_of(await keyed.client.post("/secrets", json={"name": "API_KEY", "value": "x"}), 409)
    listed = (await keyed.client.get("/secrets")).json()["items"]
    assert [s["name"] for s in listed] == ["API_KEY"]
    changed = await keyed.client.put("/secrets/API_KEY", json={"value": "new-value"})
    assert changed.status_code == 200
    error_of(await keyed.client.put("/secrets/NOPE", json={"value": "x"}), 404)
    for bad in ({"name": "1abc", "value": "x"}, {"name": "ok", "value": ""}, {"name": "ok"}):
        error_of(await keyed.client.post("/secrets", json=bad), 422)
    assert (await keyed.client.delete("/secrets/API_KEY")).status_code == 204
    error_of(await keyed.client.delete("/secrets/API_KEY"), 404)


async def test_without_a_key_secrets_are_refused_with_a_clear_answer(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path / "nokey", weft_secret_key=None) as weft:
        response = await weft.client.post("/secrets", json={"name": "A", "value": "b"})
        error = error_of(response, 503, "secret_key_missing")
        assert "WEFT_SECRET_KEY is not set" in error["message"]


async def test_an_unknown_secret_is_refused_when_saved(keyed: WeftServer) -> None:
    graph = {
        "nodes": [{"id": "t", "type": "transform", "params": {"template": "{{ secrets.GHOST }}"}}]
    }
    response = await keyed.client.post("/workflows", json={"name": "x", "graph": graph})
    (detail,) = error_of(response, 422, "invalid_graph")["details"]
    assert (detail["code"], detail["node_id"], detail["field"]) == (
        "unknown_secret", "t", "params.template",
    )  # fmt: skip


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Answers what it received (headers and query) in its body: a secret would come back."""
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        got = {
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }
        seen.append(got)
        await json_response(send, 200, json.dumps(got).encode())

    async with serve_asgi(app) as url:
        yield url, seen


async def test_a_secret_used_in_a_header_and_a_url_is_never_shown(
    keyed: WeftServer, echo: tuple[str, list[dict[str, Any]]], database_url: str, capfd: Any
) -> None:
    url, seen = echo
    await keyed.client.post("/secrets", json={"name": "TOKEN", "value": SECRET})
    graph = {
        "nodes": [
            {"id": "call", "type": "http.request", "params": {
                "url": url + "/echo?key={{ secrets.TOKEN }}",
                "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
            }},
            {"id": "show", "type": "transform", "params": {"template": SHOW}},
        ],
        "edges": [{"id": "e", "from": "call", "to": "show"}],
    }  # fmt: skip
    workflow = await keyed.create_workflow(graph)
    run = await keyed.run(workflow["id"])
    assert run["status"] == "succeeded", run["error"]
    # The secret was used: the peer got it, in the header and the URL
    assert seen[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert f"key={SECRET}" in seen[0]["query"]
    # ... and is shown nowhere: every answer about the run,
    answers = [
        (await keyed.client.get(path)).text
        for path in (
            f"/runs/{run['id']}", f"/runs/{run['id']}/nodes", f"/runs/{run['id']}/logs",
            f"/workflows/{workflow['id']}", "/secrets", f"/workflows/{workflow['id']}/runs",
        )
    ]  # fmt: skip
    async with keyed.client.stream("GET", f"/runs/{run['id']}/events?after=0") as events:
        answers.append((await events.aread()).decode())
    tried = await keyed.client.post(f"/workflows/{workflow['id']}/nodes/call/test")
    answers.append(tried.text)
    waited = await keyed.client.post(f"/workflows/{workflow['id']}/run?wait=20", json={})
    assert waited.json()["status"] == "succeeded"
    answers.append(waited.text)  # the finished run as its waiter got it
    assert tried.json()["status"] == "succeeded"
    for text in answers:
        assert SECRET not in text
    nodes = (await keyed.client.get(f"/runs/{run['id']}/nodes")).json()["items"]
    assert nodes[0]["input"]["params"]["headers"]["Authorization"] == "Bearer ***"
    assert nodes[1]["output"]["result"].startswith("token=***; echoed=")
    # every stored row of every table,
    conn = await asyncpg.connect(database_url)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table}" t')
            assert not [r for r in rows if SECRET in r["row"]], table
    finally:
        await conn.close()
    # and the server's own log.
    out, err = capfd.readouterr()
    assert SECRET not in out + err


async def test_a_secret_cannot_be_passed_to_a_child_run(keyed: WeftServer) -> None:
    await keyed.client.post("/secrets", json={"name": "TOKEN", "value": SECRET})
    child = await keyed.create_workflow({"nodes": [{"id": "s", "type": "start"}]})
    node = {
        "id": "call",
        "type": "workflow.run",
        "params": {"workflow_id": child["id"], "input": {"token": "{{ secrets.TOKEN }}"}},
    }
    response = await keyed.client.post(
        "/workflows", json={"name": "parent", "graph": {"nodes": [node]}}
    )
    (detail,) = error_of(response, 422, "invalid_graph")["details"]
    assert (detail["code"], detail["field"]) == ("secret_in_child_input", "params.input.token")
