"""Blocks that reach outside: gcs.write on the GCS emulator, llm.simple on a local
OpenAI-compatible server, both through real runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage

from runner.artifacts.gcs import gcs_client_from_env
from tests.gcs_emulator import run_gcs_emulator
from tests.support import WeftServer, json_response, read_body, run_weft_server, serve_asgi

pytestmark = pytest.mark.anyio

BUCKET = "weft-test-artifacts"


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with run_gcs_emulator(BUCKET) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        yield url


async def test_gcs_write_through_the_emulator(
    gcs_emulator: str, database_url: str, tmp_path: Path
) -> None:
    # Given weft configured with GCS_BUCKET and the emulator
    graph = {
        "nodes": [
            {"id": "start", "type": "start"},
            {
                "id": "save",
                "type": "gcs.write",
                "params": {"path": "runs/{{ trigger.name }}.json", "content": "{{ trigger }}"},
            },
            {
                "id": "note",
                "type": "gcs.write",
                "params": {"path": "notes/hello.txt", "content": "hi {{ trigger.name }}"},
            },
        ],
        "edges": [
            {"id": "a", "from": "start", "to": "save"},
            {"id": "b", "from": "start", "to": "note"},
        ],
    }
    async with run_weft_server(database_url, tmp_path, gcs_bucket=BUCKET) as weft:
        workflow = await weft.create_workflow(graph)

        # When it runs
        run = await weft.run(workflow["id"], {"name": "ada", "n": 1})

        # Then the objects are in the bucket, as the real client sees them
        assert run["status"] == "succeeded", run
        save = run["outputs"]["save"]
        assert save["gcs_uri"] == f"gs://{BUCKET}/runs/ada.json"
        client = gcs_client_from_env()
        blob = storage.Blob("runs/ada.json", client.bucket(BUCKET))
        assert json.loads(blob.download_as_bytes(client=client)) == {"name": "ada", "n": 1}
        blob.reload(client=client)
        assert blob.content_type == "application/json"
        note = storage.Blob("notes/hello.txt", client.bucket(BUCKET))
        assert note.download_as_bytes(client=client) == b"hi ada"

        # And the artifact rows serve the content back
        response = await weft.client.get(f"/artifacts/{save['artifact_id']}")
        assert response.status_code == 200
        assert response.json() == {"name": "ada", "n": 1}
        response = await weft.client.get(f"/artifacts/{run['outputs']['note']['artifact_id']}")
        assert response.content == b"hi ada"
        assert response.headers["content-type"].startswith("text/plain")


@pytest.fixture
async def openai_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local OpenAI-compatible chat completions endpoint recording what it receives."""
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = dict(scope["headers"])
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            await json_response(send, 404, b'{"error": "not found"}')
            return
        request = json.loads(body)
        received.append({"request": request, "auth": headers.get(b"authorization", b"").decode()})
        if request["messages"][-1]["content"] == "please fail":
            await json_response(send, 429, b'{"error": {"message": "rate limited"}}')
            return
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"echo: {request['messages'][-1]['content']}",
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
        await json_response(send, 200, json.dumps(reply).encode())

    async with serve_asgi(app) as url:
        yield url, received


async def test_llm_calls_an_openai_compatible_endpoint(
    openai_server: tuple[str, list[dict[str, Any]]], database_url: str, tmp_path: Path
) -> None:
    url, received = openai_server
    graph = {
        "nodes": [
            {"id": "ask", "type": "llm.simple", "params": {"prompt": "hello {{ trigger.who }}"}},
            {
                "id": "ask2",
                "type": "llm.simple",
                "params": {"prompt": "{{ upstream.ask.text }}", "model": "tiny-1"},
            },
        ],
        "edges": [{"id": "e", "from": "ask", "to": "ask2"}],
    }
    async with run_weft_server(
        database_url,
        tmp_path,
        openai_api_key="sk-test",
        openai_base_url=f"{url}/v1",
        openai_model="default-model",
    ) as weft:
        workflow = await weft.create_workflow(graph)
        run = await weft.run(workflow["id"], {"who": "ada"})

        assert run["status"] == "succeeded", run
        assert run["outputs"]["ask"] == {"text": "echo: hello ada", "model": "default-model"}
        assert run["outputs"]["ask2"] == {"text": "echo: echo: hello ada", "model": "tiny-1"}
        assert received[0]["auth"] == "Bearer sk-test"
        assert received[0]["request"]["model"] == "default-model"
        assert received[0]["request"]["messages"] == [{"role": "user", "content": "hello ada"}]

        # An error status from the endpoint fails the node with a clear error
        failing = await weft.create_workflow(
            {"nodes": [{"id": "ask", "type": "llm.simple", "params": {"prompt": "please fail"}}]}
        )
        run = await weft.run(failing["id"])
        assert run["status"] == "failed"
        assert run["error"]["type"] == "LlmResponseError"
        assert "429" in run["error"]["message"]


async def test_llm_without_a_key_upper_cases(weft: WeftServer) -> None:
    assert weft.system.settings.openai_api_key is None
    workflow = await weft.create_workflow(
        {"nodes": [{"id": "ask", "type": "llm.simple", "params": {"prompt": "Hello, weft"}}]}
    )
    run = await weft.run(workflow["id"])
    assert run["outputs"]["ask"] == {"text": "HELLO, WEFT", "model": "fallback-upper"}
