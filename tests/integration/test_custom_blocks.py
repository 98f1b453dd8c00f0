"""Blocks registered by an embedder run like the standard ones; a graph whose block has since
gone fails its run with a clear error instead of crashing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from blocks import RunContext, standard_registry
from tests.support import run_weft_server

pytestmark = pytest.mark.anyio


class ShoutParams(BaseModel):
    word: str


def registry_with_shout() -> Any:
    registry = standard_registry()

    @registry.register("shout", ShoutParams)
    async def shout(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Shouts a word."""
        ctx.log.info("shouting", word=ctx.params_as(ShoutParams).word)
        return {"text": ctx.params_as(ShoutParams).word.upper() + "!"}

    return registry


GRAPH = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "s", "type": "shout", "params": {"word": "{{ upstream.start.data.w }}"}},
    ],
    "edges": [{"id": "e", "from": "start", "to": "s"}],
}


async def test_custom_block_runs_and_a_vanished_block_fails_the_run(
    database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path, registry=registry_with_shout()) as weft:
        palette = (await weft.client.get("/blocks")).json()["items"]
        assert "shout" in {b["type"] for b in palette}
        workflow = await weft.create_workflow(GRAPH)
        run = await weft.run(workflow["id"], {"w": "hey"})
        assert run["status"] == "succeeded", run
        assert run["outputs"]["s"] == {"text": "HEY!"}
        logs = (await weft.client.get(f"/runs/{run['id']}/logs")).json()["items"]
        assert {"node_id": "s", "message": "shouting", "data": {"word": "hey"}}.items() <= {
            k: v for line in logs if line["node_id"] == "s" for k, v in line.items()
        }.items()

    # When a server without that block runs the stored workflow
    async with run_weft_server(database_url, tmp_path) as weft:
        run = await weft.run(workflow["id"], {"w": "hey"})
        assert run["status"] == "failed"
        assert run["error"]["type"] == "InvalidGraphError"
        assert run["error"]["details"] == [
            {
                "code": "unknown_block",
                "message": "node 's': unknown block type 'shout'",
                "node_id": "s",
            }
        ]
        # and the server still works
        assert (await weft.client.get("/healthz")).status_code == 200
