"""Outbound calls that cannot be turned against the host, end to end: http.request and
llm.simple through a real server, against a real peer on loopback (the only address these
tests ever send to; the metadata rule is tested on resolved addresses in
tests/unit/test_outbound.py, without connecting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Hits, WeftServer, json_response, read_body, run_weft_server, serve_asgi

pytestmark = pytest.mark.anyio

# Every spelling of 127.0.0.1 a URL may use; {port} is the peer's.
LOOPBACK = [
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "[::ffff:127.0.0.1]",
    "127.1",
]


@pytest.fixture
async def peer() -> AsyncIterator[tuple[int, Hits]]:
    """A loopback HTTP peer: /ok answers JSON, /to/<host>/<path> redirects to
    http://<host>:<its port>/<path>. Yields its port and the hits per path."""
    hits = Hits()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        hits.add(scope["path"])
        if scope["path"].startswith("/to/"):
            host, path = scope["path"].removeprefix("/to/").split("/", 1)
            location = f"http://{host}:{scope['server'][1]}/{path}"
            headers = [(b"location", location.encode())]
            await send({"type": "http.response.start", "status": 302, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            await json_response(send, 200, b'{"ok": true}')

    async with serve_asgi(app) as url:
        yield int(url.rsplit(":", 1)[1]), hits


def fetches(urls: dict[str, str]) -> dict[str, Any]:
    """start → one http.request per url, side by side; a failure is kept, not fatal."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    nodes += [
        {"id": node_id, "type": "http.request", "params": {"url": url, "on_error": "continue"}}
        for node_id, url in urls.items()
    ]
    edges = [{"id": f"e-{node_id}", "from": "start", "to": node_id} for node_id in urls]
    return {"nodes": nodes, "edges": edges}


async def run_fetches(weft: WeftServer, urls: dict[str, str]) -> dict[str, dict[str, Any]]:
    workflow = await weft.create_workflow(fetches(urls))
    run = await weft.run(workflow["id"])
    assert run["status"] == "succeeded", run["error"]
    return await weft.nodes(run["id"])


async def test_loopback_is_refused_in_every_spelling_when_private_is_denied(
    database_url: str, tmp_path: Path, peer: tuple[int, Hits]
) -> None:
    port, hits = peer
    async with run_weft_server(database_url, tmp_path, weft_http_deny_private=True) as weft:
        # When http.request calls the peer under each spelling of loopback
        urls = {f"n{i}": f"http://{host}:{port}/ok" for i, host in enumerate(LOOPBACK)}
        nodes = await run_fetches(weft, urls)
    # Then every call fails with a clear error, and the peer never saw a request
    for i, host in enumerate(LOOPBACK):
        node = nodes[f"n{i}"]
        assert node["status"] == "failed", (host, node)
        assert node["error"]["type"] == "OutboundRefusedError"
        assert node["error"]["message"].startswith(f"http.request to {host.strip('[]')}")
        assert "refused: private and loopback addresses are refused" in node["error"]["message"]
        assert "WEFT_HTTP_DENY_PRIVATE" in node["error"]["message"]
    assert hits.counts == {}


async def test_an_allowed_host_is_reached_but_not_redirected_to_a_refused_one(
    database_url: str, tmp_path: Path, peer: tuple[int, Hits]
) -> None:
    # Given private calls denied, but the peer allowed under its name `localhost` (not as
    # 127.0.0.1: no CIDR is allowed)
    port, hits = peer
    async with run_weft_server(
        database_url, tmp_path, weft_http_deny_private=True, weft_http_allow_hosts="localhost"
    ) as weft:
        nodes = await run_fetches(
            weft,
            {
                "allowed": f"http://localhost:{port}/ok",
                "hop": f"http://localhost:{port}/to/localhost/ok",
                "escape": f"http://localhost:{port}/to/127.0.0.1/secret",
                "direct": f"http://127.0.0.1:{port}/secret",
            },
        )
    # Then the allowed host is reached, also through a redirect to itself
    assert nodes["allowed"]["status"] == "succeeded", nodes["allowed"]["error"]
    assert nodes["allowed"]["output"]["data"] == {"ok": True}
    assert nodes["hop"]["status"] == "succeeded", nodes["hop"]["error"]
    assert nodes["hop"]["output"]["data"] == {"ok": True}
    # And a redirect from it to loopback spelled otherwise is refused at that hop
    assert nodes["escape"]["status"] == "failed"
    assert nodes["escape"]["error"]["type"] == "OutboundRefusedError"
    assert nodes["escape"]["error"]["message"].startswith("http.request to 127.0.0.1 refused")
    assert nodes["direct"]["error"]["type"] == "OutboundRefusedError"
    assert hits["/to/127.0.0.1/secret"] == 1
    assert hits["/secret"] == 0
    assert (hits["/ok"], hits["/to/localhost/ok"]) == (2, 1)


async def test_loopback_is_reached_in_every_spelling_when_private_is_allowed(
    database_url: str, tmp_path: Path, peer: tuple[int, Hits]
) -> None:
    port, hits = peer
    async with run_weft_server(database_url, tmp_path, weft_http_deny_private=False) as weft:
        urls = {f"n{i}": f"http://{host}:{port}/ok" for i, host in enumerate(LOOPBACK)}
        nodes = await run_fetches(weft, urls)
    for i, host in enumerate(LOOPBACK):
        assert nodes[f"n{i}"]["status"] == "succeeded", (host, nodes[f"n{i}"]["error"])
        assert nodes[f"n{i}"]["output"]["data"] == {"ok": True}
    assert hits["/ok"] == len(LOOPBACK)


async def test_llm_base_url_on_loopback_is_refused_when_private_is_denied(
    database_url: str, tmp_path: Path, peer: tuple[int, Hits]
) -> None:
    port, hits = peer
    async with run_weft_server(
        database_url,
        tmp_path,
        weft_http_deny_private=True,
        openai_api_key="sk-test",
        openai_base_url=f"http://localhost:{port}/v1",
    ) as weft:
        workflow = await weft.create_workflow(
            {"nodes": [{"id": "ask", "type": "llm.simple", "params": {"prompt": "hi"}}]}
        )
        run = await weft.run(workflow["id"])
    assert run["status"] == "failed"
    assert run["error"]["type"] == "OutboundRefusedError"
    assert run["error"]["message"].startswith("llm.simple to localhost (127.0.0.1) refused")
    assert hits.counts == {}
