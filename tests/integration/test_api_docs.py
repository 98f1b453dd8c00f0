"""The API describes itself: /openapi.json covers every route, /docs works offline."""

from __future__ import annotations

import re

import pytest

from tests.support import WeftServer

pytestmark = pytest.mark.anyio

EXPECTED = {
    ("get", "/healthz"),
    ("get", "/blocks"),
    ("post", "/validate-graph"),
    ("post", "/workflows"),
    ("get", "/workflows"),
    ("get", "/workflows/{workflow_id}"),
    ("put", "/workflows/{workflow_id}"),
    ("delete", "/workflows/{workflow_id}"),
    ("post", "/workflows/{workflow_id}/run"),
    ("get", "/workflows/{workflow_id}/runs"),
    ("get", "/runs"),
    ("get", "/runs/{run_id}"),
    ("get", "/runs/{run_id}/nodes"),
    ("get", "/runs/{run_id}/logs"),
    ("get", "/artifacts/{artifact_id}"),
    ("post", "/hooks/{slug}"),
    ("get", "/runs/{run_id}/events"),
}


async def test_openapi_describes_every_route(weft: WeftServer) -> None:
    response = await weft.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations >= EXPECTED
    # every route the app serves is described (docs assets and the spec itself excepted)
    app_routes = {
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in weft_app_rules(weft)
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS") and not rule.websocket
    }
    # The page, its static files and the docs are not API.
    not_api = ("/docs", "/openapi", "/static/")
    undocumented = {
        r for r in app_routes - operations if r[1] != "/" and not r[1].startswith(not_api)
    }
    assert undocumented == set()
    run = spec["paths"]["/workflows/{workflow_id}/run"]["post"]
    assert "202" in run["responses"]
    assert "requestBody" in run
    create = spec["paths"]["/workflows"]["post"]
    assert {"201", "409", "422"} <= set(create["responses"])


def weft_app_rules(weft: WeftServer) -> list:  # type: ignore[type-arg]
    from web.app import create_app

    return list(create_app(weft.system.weft, weft.system.settings).url_map.iter_rules())


async def test_docs_page_needs_no_internet(weft: WeftServer) -> None:
    page = await weft.client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/"), f"docs page loads {asset} from elsewhere"
        response = await weft.client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 10_000
    assert (await weft.client.get("/docs/assets/../../etc/passwd")).status_code == 404
    assert (await weft.client.get("/docs/assets/index.html")).status_code == 404


async def test_blocks_lists_the_palette_with_schemas(weft: WeftServer) -> None:
    items = (await weft.client.get("/blocks")).json()["items"]
    by_type = {b["type"]: b for b in items}
    assert set(by_type) == {
        "start",
        "http.request",
        "gcs.write",
        "llm.simple",
        "transform",
        "if",
        "delay",
    }
    assert by_type["delay"]["params_schema"]["required"] == ["seconds"]
    assert by_type["http.request"]["params_schema"]["properties"]["method"]["default"] == "GET"
    assert by_type["if"]["branching"] is True
    assert by_type["if"]["ports"] == ["true", "false"]
    assert all(b["description"] for b in items)
