"""The run monitor page at `/`, driven in a real browser (Debian's chromium via Playwright)
against a real weft server: open a workflow, run it, watch every node reach its final status,
read a node's output, find the run in the history, and get validation problems from the JSON
editor. Plus the static files: served, and nothing outside web/static/ leaks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    ViewportSize,
    WebSocketRoute,
    async_playwright,
    expect,
)

from tests.support import WeftServer, run_weft_server

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
WAIT_MS = 15_000  # generous for a loaded CI machine; waits end as soon as the page is there
expect.set_options(timeout=WAIT_MS)

# start → left, right (0.3 s delays, side by side) → join; start → check (if) → big | small.
GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "left", "type": "delay", "params": {"seconds": 0.3}},
        {"id": "right", "type": "delay", "params": {"seconds": 0.3}},
        {
            "id": "join",
            "type": "transform",
            "params": {
                "template": '{"left": {{ upstream.left.slept | tojson }}, '
                '"right": {{ upstream.right.slept | tojson }}, "n": {{ trigger.n }}}'
            },
        },
        {"id": "check", "type": "if", "params": {"condition": "trigger.n > 10"}},
        {"id": "big", "type": "transform", "params": {"template": "big"}},
        {"id": "small", "type": "transform", "params": {"template": "small"}},
    ],
    "edges": [
        {"id": "e1", "from": "start", "to": "left"},
        {"id": "e2", "from": "start", "to": "right"},
        {"id": "e3", "from": "left", "to": "join"},
        {"id": "e4", "from": "right", "to": "join"},
        {"id": "e5", "from": "start", "to": "check"},
        {"id": "e6", "from": "check", "to": "big", "port": "true"},
        {"id": "e7", "from": "check", "to": "small", "port": "false"},
    ],
}
FINAL = {
    "start": "succeeded",
    "left": "succeeded",
    "right": "succeeded",
    "join": "succeeded",
    "check": "succeeded",
    "big": "succeeded",
    "small": "skipped",
}


# Records every status each graph node shows, and every live mode, as the page changes them.
RECORD_TRANSITIONS = """() => {
  const nodes = {};
  const modes = new Set([document.querySelector('[data-testid="live-mode"]').dataset.mode]);
  window.__seen = { nodes, modes };
  new MutationObserver((records) => {
    for (const r of records) {
      const t = r.target;
      if (t.dataset.nodeId) (nodes[t.dataset.nodeId] ||= new Set()).add(t.dataset.status);
      else if (t.dataset.mode) modes.add(t.dataset.mode);
    }
  }).observe(document.body, {
    subtree: true, attributes: true, attributeFilter: ["data-status", "data-mode"],
  });
}"""
SEEN = """() => ({
  modes: [...window.__seen.modes],
  nodes: Object.fromEntries(Object.entries(window.__seen.nodes).map(([k, v]) => [k, [...v]])),
})"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (no browser download)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: python -m tests.prepare installs it")
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def node(page: Page, node_id: str) -> Locator:
    return page.locator(f'[data-testid="graph-node"][data-node-id="{node_id}"]')


async def test_monitor_runs_a_workflow_live(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    workflow = await weft.create_workflow(GRAPH, name="page demo")
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        crashes: list[str] = []
        page.on("pageerror", lambda exc: crashes.append(str(exc)))

        await page.goto(weft.url + "/")
        await page.locator(
            f'[data-testid="workflow-item"][data-workflow-id="{workflow["id"]}"]'
        ).click()
        await expect(page.get_by_test_id("workflow-name")).to_have_text("page demo")

        # The graph is drawn: every node with its id and type, the if edges labelled by port.
        await expect(page.get_by_test_id("graph-node")).to_have_count(len(GRAPH["nodes"]))
        await expect(page.get_by_test_id("graph-edge")).to_have_count(len(GRAPH["edges"]))
        await expect(node(page, "check")).to_contain_text("if")
        await expect(page.get_by_test_id("edge-port")).to_have_text(["true", "false"])
        for node_id in FINAL:
            await expect(node(page, node_id)).to_have_attribute("data-status", "none")
        # Layered left to right: start, then the delays and the if, then the join and branches.
        xs = {}
        for node_id in ("start", "left", "check", "join", "small"):
            box = await node(page, node_id).bounding_box()
            assert box is not None, node_id
            xs[node_id] = box["x"]
        assert xs["start"] < xs["left"] == xs["check"] < xs["join"] == xs["small"]

        # Invalid JSON input: an inline error and no request.
        await page.get_by_test_id("run-input").fill('{"n": 42')
        await page.get_by_test_id("run-button").click()
        await expect(page.get_by_test_id("run-input-error")).to_be_visible()
        await expect(page.get_by_test_id("run-input-error")).to_contain_text("Invalid JSON")
        no_runs = await weft.client.get(f"/workflows/{workflow['id']}/runs")
        assert no_runs.json()["items"] == []

        # Run it and watch every node change colour live, to its final status.
        await page.evaluate(RECORD_TRANSITIONS)
        await page.get_by_test_id("run-input").fill('{"n": 42}')
        await expect(page.get_by_test_id("run-input-error")).to_be_hidden()
        await page.get_by_test_id("run-button").click()
        for node_id, status in FINAL.items():
            await expect(node(page, node_id)).to_have_attribute("data-status", status)
        await expect(page.get_by_test_id("run-status")).to_have_attribute(
            "data-status", "succeeded"
        )
        await expect(page.get_by_test_id("run-progress-text")).to_have_text("100%")
        await expect(page.get_by_test_id("run-progress")).to_have_attribute("aria-valuenow", "100")
        await expect(page.get_by_test_id("run-duration")).to_have_text(
            re.compile(r"\d+(\.\d+)? (ms|sec)")
        )

        runs = (await weft.client.get(f"/workflows/{workflow['id']}/runs")).json()["items"]
        assert len(runs) == 1
        run_id = runs[0]["id"]
        assert page.url.endswith(f"/runs/{run_id}")
        server_nodes = await weft.nodes(run_id)
        assert {n: v["status"] for n, v in server_nodes.items()} == FINAL
        seen = await page.evaluate(SEEN)
        assert "live" in seen["modes"]  # followed over the websocket
        assert "running" in seen["nodes"]["left"] + seen["nodes"]["right"]

        # A node's details: its output, input and logs in the side panel.
        await node(page, "join").click()
        panel = page.get_by_test_id("node-panel")
        await expect(panel).to_have_attribute("data-node-id", "join")
        await expect(page.get_by_test_id("node-panel-status")).to_have_text("succeeded")
        output = page.get_by_test_id("node-output")
        await expect(output).to_contain_text('"left": 0.3')
        assert json.loads(await output.inner_text()) == server_nodes["join"]["output"]
        await expect(page.get_by_test_id("node-input")).to_contain_text('"upstream"')
        await expect(page.get_by_test_id("node-logs")).to_be_visible()

        # The run is in the history, newest first, with its status and duration.
        item = page.locator(f'[data-testid="history-item"][data-run-id="{run_id}"]')
        await expect(item).to_have_attribute("data-status", "succeeded")
        await expect(item.get_by_test_id("history-duration")).to_have_text(re.compile(r"\d"))
        await page.screenshot(path=str(tmp_path / "run.png"))

        # Without a working run socket the page polls the REST API to the end of the run.
        async def refuse(ws: WebSocketRoute) -> None:
            await ws.close(code=1011, reason="refused by the test")

        await page.route_web_socket(re.compile(r"/ws/runs/"), refuse)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.get_by_test_id("run-button").click()
        await page.wait_for_url(lambda url: "/runs/" in url and not url.endswith(run_id))
        second_id = page.url.rsplit("/", 1)[1]
        await expect(page.get_by_test_id("run-status")).to_have_attribute(
            "data-status", "succeeded"
        )
        for node_id, status in FINAL.items():
            await expect(node(page, node_id)).to_have_attribute("data-status", status)
        await expect(page.get_by_test_id("run-progress-text")).to_have_text("100%")
        assert "polling" in (await page.evaluate(SEEN))["modes"]
        assert sum(url.endswith(f"/runs/{second_id}") for url in requested) >= 2
        history = page.get_by_test_id("history-item")
        await expect(history).to_have_count(2)
        await expect(history.first).to_have_attribute("data-run-id", second_id)
        await expect(history.first).to_have_attribute("data-status", "succeeded")

        # A past run opens with its final colours (here: from the workflow view).
        await page.locator(
            f'[data-testid="workflow-item"][data-workflow-id="{workflow["id"]}"]'
        ).click()
        await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "none")
        await expect(node(page, "small")).to_have_attribute("data-status", "none")
        await item.click()
        await expect(page).to_have_url(re.compile(f"/runs/{run_id}$"))
        await expect(node(page, "small")).to_have_attribute("data-status", "skipped")
        await expect(node(page, "join")).to_have_attribute("data-status", "succeeded")
        await expect(page.get_by_test_id("run-status")).to_have_attribute(
            "data-status", "succeeded"
        )

        # The JSON editor: a broken graph gets its problem listed by POST /validate-graph.
        await page.get_by_test_id("tab-editor").click()
        editor = page.get_by_test_id("graph-json")
        broken = json.loads(await editor.input_value())
        broken["edges"].append({"id": "e8", "from": "join", "to": "ghost"})
        await editor.fill(json.dumps(broken, indent=2))
        await page.get_by_test_id("validate-button").click()
        problems = page.get_by_test_id("problem")
        await expect(problems).to_have_count(1)
        await expect(problems.first).to_contain_text("ghost")
        # Saving it is refused with the same problem, and nothing is written.
        await page.get_by_test_id("save-button").click()
        await expect(page.get_by_test_id("editor-error")).to_contain_text("1 problem")
        await expect(problems.first).to_contain_text("ghost")
        stored = (await weft.client.get(f"/workflows/{workflow['id']}")).json()
        assert len(stored["graph"]["edges"]) == len(GRAPH["edges"])
        await page.screenshot(path=str(tmp_path / "editor.png"))

        # A fixed graph validates (with its order) and saves; the page shows the new name.
        del broken["edges"][-1]
        await editor.fill(json.dumps(broken, indent=2))
        await page.get_by_test_id("validate-button").click()
        await expect(page.get_by_test_id("editor-valid")).to_have_text("✓ valid")
        await expect(page.get_by_test_id("editor-order")).to_contain_text("start")
        await page.get_by_test_id("editor-name").fill("page demo v2")
        await page.get_by_test_id("save-button").click()
        await expect(page.get_by_test_id("editor-saved")).to_be_visible()
        await expect(page.get_by_test_id("workflow-name")).to_have_text("page demo v2")
        stored = (await weft.client.get(f"/workflows/{workflow['id']}")).json()
        assert stored["name"] == "page demo v2"

        # Another editor saves (the API here): the page redraws; their runs join the history.
        extended = {
            "nodes": [*GRAPH["nodes"], {"id": "extra", "type": "transform", "params": {}}],
            "edges": [*GRAPH["edges"], {"id": "e9", "from": "join", "to": "extra"}],
        }
        extended["nodes"][-1]["params"] = {"template": "{{ upstream.join.result.n }}"}
        put = await weft.client.put(
            f"/workflows/{workflow['id']}", json={"name": "edited elsewhere", "graph": extended}
        )
        assert put.status_code == 200, put.text
        await expect(page.get_by_test_id("workflow-name")).to_have_text("edited elsewhere")
        await expect(page.get_by_test_id("graph-node")).to_have_count(len(extended["nodes"]))
        await expect(page.get_by_test_id("editor-name")).to_have_value("edited elsewhere")
        started = await weft.client.post(
            f"/workflows/{workflow['id']}/run", json={"start_input": {"n": 1}}
        )
        assert started.status_code == 202, started.text
        await weft.wait(started.json()["id"])
        await expect(history).to_have_count(3)
        await expect(history.first).to_have_attribute("data-run-id", started.json()["id"])

        for shot in ("run.png", "editor.png"):
            path = tmp_path / shot
            assert path.exists()
            assert path.stat().st_size > 10_000
        assert crashes == []
    finally:
        await context.close()


async def test_static_files_are_served_and_confined(weft: WeftServer) -> None:
    page = await weft.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in page.text

    script = await weft.client.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "WebSocket" in script.text
    style = await weft.client.get("/static/style.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")

    for path in (
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2fpage.py",
        "/static/nope.js",
        "/static/",
    ):
        response = await weft.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", path

    spec = (await weft.client.get("/openapi.json")).json()
    assert "/" not in spec["paths"]
    assert not any(p.startswith("/static") for p in spec["paths"])


async def test_page_asks_for_the_api_token_and_runs_live(
    browser: Browser, database_url: str, tmp_path: Path
) -> None:
    async with run_weft_server(database_url, tmp_path, weft_api_token="page-t0ken") as weft:
        auth = {"Authorization": "Bearer page-t0ken"}
        created = await weft.client.post(
            "/workflows", json={"name": "guarded", "graph": GRAPH}, headers=auth
        )
        workflow = created.json()
        page = await browser.new_page(viewport=VIEWPORT)
        prompts: list[str] = []

        async def answer(dialog: Any) -> None:
            prompts.append(dialog.message)
            await dialog.accept("page-t0ken")

        page.on("dialog", answer)
        await page.goto(weft.url + "/")
        item = page.locator(f'[data-workflow-id="{workflow["id"]}"]')
        await item.first.click()
        await page.get_by_test_id("run-input").fill('{"n": 42}')
        await page.get_by_test_id("run-button").click()
        # Live over the websocket, which took the token as ?token=
        await expect(page.get_by_test_id("live-mode")).to_have_text("live")
        for node_id, status in FINAL.items():
            await expect(node(page, node_id)).to_have_attribute("data-status", status)
        assert len(prompts) == 1
        assert "API token" in prompts[0]
        await page.close()
