"""The server starts, answers health and runs a one-node workflow."""

from __future__ import annotations

import pytest

from tests.support import WeftServer

pytestmark = pytest.mark.anyio


async def test_healthz(weft: WeftServer) -> None:
    response = await weft.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_one_node_run(weft: WeftServer) -> None:
    wf = await weft.create_workflow({"nodes": [{"id": "s", "type": "start"}], "edges": []})
    run = await weft.run(wf["id"], {"x": 1})
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"s": {"data": {"x": 1}}}
