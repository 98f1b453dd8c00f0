"""The API describes itself: /openapi.json covers every route, /docs works offline."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from openapi_spec_validator import validate

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
    ("post", "/workflows/{workflow_id}/duplicate"),
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


async def test_the_search_parameters_and_fields_are_described(weft: WeftServer) -> None:
    spec = (await weft.client.get("/openapi.json")).json()

    def query(method: str, path: str) -> dict[str, Any]:
        parameters = spec["paths"][path][method]["parameters"]
        return {p["name"]: p for p in parameters if p["in"] == "query"}

    for path in ("/runs", "/workflows/{workflow_id}/runs"):
        params = query("get", path)
        assert {"limit", "before", "status", "trigger_type", "since", "until"} <= set(params)
        assert "parent_run_id" in params
        assert "commas" in params["status"]["description"]
        assert params["since"]["schema"]["anyOf"][0]["format"] == "date-time"
    assert {"limit", "offset", "q", "tag"} <= set(query("get", "/workflows"))
    schemas = spec["components"]["schemas"]
    assert {"description", "tags"} <= set(schemas["WorkflowIn"]["properties"])
    assert {"description", "tags"} <= set(schemas["WorkflowOut"]["properties"])
    assert schemas["WorkflowIn"]["properties"]["tags"]["maxItems"] == 20
    duplicate = spec["paths"]["/workflows/{workflow_id}/duplicate"]["post"]
    assert {"201", "404", "422"} <= set(duplicate["responses"])
    assert duplicate["requestBody"]["required"] is False
    assert "webhook secret is NOT copied" in " ".join(duplicate["description"].split())


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
        "workflow.run",
        "respond",
    }
    assert by_type["delay"]["params_schema"]["required"] == ["seconds"]
    assert by_type["http.request"]["params_schema"]["properties"]["method"]["default"] == "GET"
    assert by_type["if"]["branching"] is True
    assert by_type["if"]["ports"] == ["true", "false"]
    assert all(b["description"] for b in items)


async def test_the_description_is_valid_openapi_with_every_reference_resolved(
    weft: WeftServer,
) -> None:
    spec = (await weft.client.get("/openapi.json")).json()
    # A real validator resolves every $ref (it failed on ErrorResponse once)
    validate(spec)
    assert "ErrorResponse" in spec["components"]["schemas"]
    # It says what the server enforces
    node = spec["components"]["schemas"]["Node"]
    types = {b["type"] for b in (await weft.client.get("/blocks")).json()["items"]}
    assert set(node["properties"]["type"]["enum"]) == types
    workflow_in = spec["components"]["schemas"]["WorkflowIn"]
    assert workflow_in["properties"]["name"]["pattern"] == "^[^\\u0000]*$"
    links = spec["paths"]["/workflows"]["post"]["responses"]["201"]["links"]
    assert links["get_get_workflow"]["parameters"] == {"workflow_id": "$response.body#/id"}


async def test_a_405_says_which_methods_are_allowed(weft: WeftServer) -> None:
    response = await weft.client.request("PATCH", "/workflows")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_typed_client_generates_from_the_description(
    weft: WeftServer, tmp_path: Path
) -> None:
    spec = (await weft.client.get("/openapi.json")).json()
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = await anyio.run_process(
        [str(generator), "generate", "--path", "openapi.json", "--meta", "none",
         "--output-path", "weft_client"],
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    # Every operation is generated; the only response left out is an artifact's bytes
    # (any content type, as the block stored it), which a generator cannot type
    warned = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert warned == ["WARNING parsing GET /artifacts/{artifact_id} within default."], output
    assert "Unsupported content_type */*" in output
    # One module per operation, and the package imports
    modules = {p.stem for p in (tmp_path / "weft_client" / "api").rglob("*.py")}
    operations = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert operations <= modules
    imported = await anyio.run_process(
        [sys.executable, "-c", "import weft_client, weft_client.api.default.get_get_run"],
        cwd=tmp_path,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr.decode()
