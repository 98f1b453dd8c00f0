"""The run monitor page at `/`, driven in a real browser (Debian's chromium via Playwright)
against a real weft server: open a workflow, run it, watch every node reach its final status,
read a node's output, find the run in the history, and get validation problems from the JSON
editor. Plus the static files: served, and nothing outside web/static/ leaks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    FloatRect,
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


def chain(ids: list[str]) -> dict[str, Any]:
    """One transform node per id, each the child of the one before: one layer per node."""
    return {
        "nodes": [{"id": i, "type": "transform", "params": {"template": i}} for i in ids],
        "edges": [{"id": f"e{n}", "from": a, "to": b} for n, (a, b) in enumerate(pairwise(ids))],
    }


def grid(layers: int, rows: int) -> dict[str, Any]:
    """layers x rows nodes: each layer's nodes are children of the node above-left of them."""
    ids = [[f"n{layer}-{row}" for row in range(rows)] for layer in range(layers)]
    return {
        "nodes": [
            {"id": i, "type": "transform", "params": {"template": i}} for col in ids for i in col
        ],
        "edges": [
            {"id": f"e-{b}", "from": ids[layer - 1][max(0, row - 1)], "to": b}
            for layer in range(1, layers)
            for row, b in enumerate(ids[layer])
        ],
    }


# The ids of the drawn nodes not wholly inside the graph view (or the view outside the window).
NODES_OUTSIDE_VIEW = """() => {
  const view = document.querySelector('[data-testid="graph"]').getBoundingClientRect();
  const onScreen = view.width > 0 && view.height > 0 && view.left >= 0 && view.top >= 0
    && view.right <= window.innerWidth && view.bottom <= window.innerHeight;
  const inside = (r) => onScreen && r.width > 0 && r.height > 0 && r.left >= view.left
    && r.right <= view.right && r.top >= view.top && r.bottom <= view.bottom;
  return [...document.querySelectorAll('[data-testid="graph-node"]')]
    .filter((n) => !inside(n.getBoundingClientRect())).map((n) => n.dataset.nodeId);
}"""


async def wait_graph_fits(page: Page, count: int) -> None:
    """Every one of the `count` drawn nodes is wholly inside the graph view."""
    await expect(page.get_by_test_id("graph-node")).to_have_count(count)
    try:
        await page.wait_for_function(f"() => ({NODES_OUTSIDE_VIEW})().length === 0")
    finally:
        outside = await page.evaluate(NODES_OUTSIDE_VIEW)
        assert outside == [], f"{len(outside)} node(s) not in view: {outside[:10]}"


async def box_of(locator: Locator) -> FloatRect:
    box = await locator.bounding_box()
    assert box is not None
    return box


def inside(inner: FloatRect, outer: FloatRect) -> bool:
    return (
        outer["x"] <= inner["x"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and outer["y"] <= inner["y"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def same_box(a: FloatRect, b: FloatRect) -> bool:
    return all(abs(a[k] - b[k]) < 1 for k in ("x", "y", "width", "height"))


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


async def test_graph_is_fitted_to_the_view_and_pans_and_zooms(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    ids = ["start", "fetch", "parse", "enrich", "rank", "render", "publish-the-report"]
    wide = await weft.create_workflow(chain(ids), name="seven layers")
    hundred = await weft.create_workflow(grid(10, 10), name="a hundred nodes")
    page = await browser.new_page(viewport=VIEWPORT)
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    await page.goto(weft.url + "/")
    await page.locator(f'[data-workflow-id="{wide["id"]}"]').click()

    # Seven layers at 1280x800: scaled down until the whole graph, last node included, shows.
    view = page.get_by_test_id("graph")
    await wait_graph_fits(page, len(ids))
    last = node(page, ids[-1])
    assert inside(await box_of(last), await box_of(view))
    await expect(view).to_have_attribute("data-fitted", "true")
    fitted = {i: await box_of(node(page, i)) for i in (ids[0], ids[-1])}
    fitted_level = await page.get_by_test_id("zoom-level").inner_text()
    assert int(fitted_level.rstrip("%")) < 100
    await page.screenshot(path=str(tmp_path / "fitted.png"))

    # The wheel zooms in about the pointer: nodes grow and the last one leaves the view.
    frame = await box_of(view)
    centre = (frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    await page.mouse.move(*centre)
    await page.mouse.wheel(0, -400)
    await expect(view).to_have_attribute("data-fitted", "false")
    await expect(page.get_by_test_id("zoom-level")).not_to_have_text(fitted_level)
    zoomed = await box_of(last)
    assert zoomed["width"] > fitted[ids[-1]]["width"] * 1.5
    assert not inside(zoomed, frame)
    # The + button zooms further, about the centre; "Fit" shows the whole graph again.
    await page.get_by_test_id("zoom-in").click()
    await page.wait_for_function(
        "([id, width]) => document.querySelector(`[data-node-id='${id}']`)"
        ".getBoundingClientRect().width > width",
        arg=[ids[-1], zoomed["width"] * 1.2],
    )
    await page.get_by_test_id("zoom-fit").click()
    await expect(view).to_have_attribute("data-fitted", "true")
    await expect(page.get_by_test_id("zoom-level")).to_have_text(fitted_level)
    for node_id, box in fitted.items():
        assert same_box(await box_of(node(page, node_id)), box), node_id
    # The - button zooms out of the fitted view; everything still shows.
    await page.get_by_test_id("zoom-out").click()
    await expect(view).to_have_attribute("data-fitted", "false")
    await wait_graph_fits(page, len(ids))
    assert (await box_of(last))["width"] < fitted[ids[-1]]["width"]

    # Dragging pans, even when it starts on a node, and does not select that node.
    await page.get_by_test_id("zoom-fit").click()
    middle = await box_of(node(page, "enrich"))
    start = (middle["x"] + middle["width"] / 2, middle["y"] + middle["height"] / 2)
    await page.mouse.move(*start)
    await page.mouse.down()
    await page.mouse.move(start[0] + 90, start[1] + 40, steps=6)
    await page.mouse.up()
    await expect(view).to_have_attribute("data-fitted", "false")
    moved = await box_of(node(page, "enrich"))
    assert abs(moved["x"] - middle["x"] - 90) < 1.5
    assert abs(moved["y"] - middle["y"] - 40) < 1.5
    await expect(page.get_by_test_id("node-panel")).to_have_attribute("data-node-id", "")
    # A click (no drag) still selects; "0" with the graph focused fits it again.
    await node(page, "enrich").click()
    await expect(page.get_by_test_id("node-panel")).to_have_attribute("data-node-id", "enrich")
    await page.keyboard.press("0")
    await expect(view).to_have_attribute("data-fitted", "true")
    assert same_box(await box_of(last), fitted[ids[-1]])

    # A hundred nodes (ten layers of ten) fit too: every node's box is inside the view.
    await page.locator(f'[data-workflow-id="{hundred["id"]}"]').click()
    await expect(page.get_by_test_id("workflow-name")).to_have_text("a hundred nodes")
    await wait_graph_fits(page, 100)
    await page.screenshot(path=str(tmp_path / "hundred.png"))
    assert crashes == []
    await page.close()


# Every "k/n items" text a graph node shows, as the page changes them.
RECORD_ITEMS = """() => {
  const seen = new Set();
  window.__items = seen;
  new MutationObserver(() => {
    for (const tag of document.querySelectorAll('[data-testid="node-items"]')) {
      seen.add(tag.textContent);
    }
  }).observe(document.querySelector('[data-testid="graph-svg"]'), {
    subtree: true, childList: true,
  });
}"""


async def test_for_each_progress_and_handled_failures_show(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    graph: dict[str, Any] = {
        "nodes": [
            {"id": "start", "type": "start"},
            # One item at a time, so that the page sees the count go up live.
            {
                "id": "each",
                "type": "delay",
                "params": {"seconds": 0.15, "for_each": [1, 2, 3], "concurrency": 1},
            },
            {
                "id": "shout",
                "type": "transform",
                "params": {"for_each": [1, 2, 3], "template": "{{ item }}"},
            },
            {
                "id": "boom",
                "type": "http.request",
                "params": {"url": "http://127.0.0.1:1/nothing-here", "on_error": "continue"},
            },
            {
                "id": "after",
                "type": "transform",
                "params": {"template": "{{ upstream.boom.error.type }}"},
            },
        ],
        "edges": [
            {"id": "e1", "from": "start", "to": "each"},
            {"id": "e2", "from": "start", "to": "shout"},
            {"id": "e3", "from": "start", "to": "boom"},
            {"id": "e4", "from": "boom", "to": "after"},
        ],
    }
    workflow = await weft.create_workflow(graph, name="items and handled")
    page = await browser.new_page(viewport=VIEWPORT)
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    await page.goto(weft.url + "/")
    await page.locator(f'[data-workflow-id="{workflow["id"]}"]').click()
    await expect(page.get_by_test_id("graph-node")).to_have_count(len(graph["nodes"]))
    await expect(page.get_by_test_id("node-items")).to_have_count(0)
    await page.evaluate(RECORD_ITEMS)
    await page.get_by_test_id("run-button").click()

    await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
    run_id = page.url.rsplit("/", 1)[1]
    server_nodes = await weft.nodes(run_id)
    assert server_nodes["each"]["items"] == {"done": 3, "total": 3}
    assert server_nodes["boom"]["status"] == "failed"

    async def check_page() -> None:
        # for_each nodes: "3/3 items" on the node.
        for node_id in ("each", "shout"):
            await expect(node(page, node_id)).to_have_attribute("data-status", "succeeded")
            await expect(node(page, node_id).get_by_test_id("node-items")).to_have_text("3/3 items")
        # The handled failure: failed (red) in a run that succeeded, and marked handled.
        boom = node(page, "boom")
        await expect(boom).to_have_attribute("data-status", "failed")
        await expect(boom).to_have_attribute("data-handled", "continue")
        await expect(boom.get_by_test_id("node-handled")).to_have_text("handled")
        await expect(boom.locator(".box")).to_have_css("stroke", "rgb(220, 38, 38)")
        await expect(node(page, "after")).to_have_attribute("data-status", "succeeded")
        await expect(page.get_by_test_id("node-handled")).to_have_count(1)
        # The same in the node's details.
        await boom.click()
        await expect(page.get_by_test_id("node-panel-status")).to_have_text("failed")
        await expect(page.get_by_test_id("node-panel-handled")).to_be_visible()
        await expect(page.get_by_test_id("node-error")).to_contain_text("ConnectError")
        await expect(page.get_by_test_id("node-panel-items")).to_be_hidden()
        await node(page, "each").click()
        await expect(page.get_by_test_id("node-panel-items")).to_have_text("3/3 items")
        await expect(page.get_by_test_id("node-panel-handled")).to_be_hidden()

    # Live: the count went up item by item (node.item events), then the final state shows.
    await check_page()
    seen = await page.evaluate("() => [...window.__items]")
    assert {"1/3 items", "2/3 items"} & set(seen), seen
    await page.screenshot(path=str(tmp_path / "items.png"))
    # A past run, from the REST API only (no node.failed event to say "handled"): the same.
    await page.reload()
    await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
    await check_page()
    assert crashes == []
    await page.close()


async def open_workflow(page: Page, weft: WeftServer, workflow: dict[str, Any]) -> None:
    await page.goto(weft.url + "/")
    await page.locator(f'[data-workflow-id="{workflow["id"]}"]').click()
    await expect(page.get_by_test_id("workflow-name")).to_have_text(workflow["name"])


async def run_on_page(page: Page, status: str) -> str:
    """Press Run, wait for the run to end with `status`; returns its id."""
    shown = page.url
    await page.get_by_test_id("run-button").click()
    await page.wait_for_url(lambda url: "/runs/" in url and url != shown)
    await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", status)
    return page.url.rsplit("/", 1)[1]


async def test_parent_and_child_runs_link_to_each_other(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    child = await weft.create_workflow(
        {"nodes": [{"id": "hello", "type": "transform", "params": {"template": "hi"}}]},
        name="the child",
    )
    parent = await weft.create_workflow(
        {
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "call", "type": "workflow.run", "params": {"workflow_id": child["id"]}},
                {"id": "after", "type": "transform", "params": {"template": "done"}},
            ],
            "edges": [
                {"id": "e1", "from": "start", "to": "call"},
                {"id": "e2", "from": "call", "to": "after"},
            ],
        },
        name="the parent",
    )
    page = await browser.new_page(viewport=VIEWPORT)
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    by_parent: list[int] = []  # the statuses of GET /runs?parent_run_id=
    page.on(
        "response",
        lambda r: by_parent.append(r.status) if "/runs?parent_run_id=" in r.url else None,
    )
    await open_workflow(page, weft, parent)
    parent_id = await run_on_page(page, "succeeded")
    child_id = (await weft.nodes(parent_id))["call"]["output"]["run_id"]
    child_run = (await weft.client.get(f"/runs/{child_id}")).json()
    assert (child_run["parent_run_id"], child_run["trigger_type"]) == (parent_id, "workflow")
    child_url = re.compile(f"#/workflows/{child['id']}/runs/{child_id}$")
    parent_url = re.compile(f"#/workflows/{parent['id']}/runs/{parent_id}$")

    # The workflow.run node's details link to the run it started, in the other workflow.
    await node(page, "call").click()
    open_child = page.get_by_test_id("node-child-run-link")
    await expect(open_child).to_have_attribute("data-run-id", child_id)
    await open_child.click()
    await expect(page).to_have_url(child_url)
    await expect(page.get_by_test_id("workflow-name")).to_have_text("the child")
    await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "succeeded")
    await expect(node(page, "hello")).to_have_attribute("data-status", "succeeded")

    # The child run says where it comes from: its parent run, in the parent's workflow.
    parent_link = page.get_by_test_id("run-parent-link")
    await expect(parent_link).to_have_attribute("data-run-id", parent_id)
    await expect(page.get_by_test_id("run-parent-workflow")).to_have_text("in the parent")
    await expect(page.get_by_test_id("run-parent-status")).to_have_text("succeeded")
    await expect(page.get_by_test_id("run-rerun-of")).to_have_count(0)
    await page.screenshot(path=str(tmp_path / "child.png"))
    await parent_link.click()
    await expect(page).to_have_url(parent_url)
    await expect(page.get_by_test_id("workflow-name")).to_have_text("the parent")
    await expect(node(page, "after")).to_have_attribute("data-status", "succeeded")
    await expect(page.get_by_test_id("run-parent")).to_have_count(0)

    # A run by its id alone (#/runs/{id}) opens in its own workflow.
    await page.goto(f"{weft.url}/#/runs/{child_id}")
    await expect(page).to_have_url(child_url)
    await expect(page.get_by_test_id("workflow-name")).to_have_text("the child")

    # The parent lists its child runs (GET /runs?parent_run_id=), each with its status.
    await page.get_by_test_id("run-parent-link").click()
    await expect(page).to_have_url(parent_url)
    children = page.get_by_test_id("child-run")
    await expect(children).to_have_count(1)
    await expect(children).to_have_attribute("data-run-id", child_id)
    await expect(children.get_by_test_id("child-run-status")).to_have_text("succeeded")
    await expect(children).to_contain_text("the child")
    await expect(children).to_contain_text("call")
    assert set(by_parent) == {200}, by_parent
    await page.screenshot(path=str(tmp_path / "parent.png"))
    await children.get_by_test_id("child-run-link").click()
    await expect(page).to_have_url(child_url)
    assert crashes == []
    await page.close()


async def test_rerun_from_a_node_and_rerun_failed(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    workflow = await weft.create_workflow(
        {
            "nodes": [
                {"id": "start", "type": "start"},
                {"id": "fetch", "type": "http.request", "params": {"url": "http://127.0.0.1:1/x"}},
                {"id": "shape", "type": "transform", "params": {"template": "shaped"}},
            ],
            "edges": [
                {"id": "e1", "from": "start", "to": "fetch"},
                {"id": "e2", "from": "fetch", "to": "shape"},
            ],
        },
        name="fails second",
    )
    page = await browser.new_page(viewport=VIEWPORT)
    crashes: list[str] = []
    page.on("pageerror", lambda exc: crashes.append(str(exc)))
    await open_workflow(page, weft, workflow)
    first = await run_on_page(page, "failed")
    await expect(node(page, "fetch")).to_have_attribute("data-status", "failed")
    await expect(page.get_by_test_id("node-copied")).to_have_count(0)
    rerun_failed = page.get_by_test_id("rerun-failed")
    await expect(rerun_failed).to_be_visible()

    async def check_rerun(of: str) -> str:
        """The new run is shown: it links back to `of`, its start node is copied from it."""
        await page.wait_for_url(lambda url: "/runs/" in url and not url.endswith(of))
        run_id = page.url.rsplit("/", 1)[1]
        await expect(page.get_by_test_id("run-status")).to_have_attribute("data-status", "failed")
        await expect(page.get_by_test_id("run-rerun-of-link")).to_have_attribute("data-run-id", of)
        start = node(page, "start")
        await expect(start).to_have_attribute("data-status", "succeeded")
        await expect(start).to_have_attribute("data-copied", of)
        await expect(start.get_by_test_id("node-copied")).to_have_text("copied")
        await expect(node(page, "fetch")).to_have_attribute("data-status", "failed")
        await expect(page.get_by_test_id("node-copied")).to_have_count(1)
        run = (await weft.client.get(f"/runs/{run_id}")).json()
        assert (run["rerun_of"], run["trigger_type"]) == (of, "rerun")
        nodes = await weft.nodes(run_id)
        assert (nodes["start"]["attempt"], nodes["start"]["started_at"]) == (0, None)
        assert nodes["fetch"]["attempt"] == 1
        return run_id

    # Re-run from a node: the node's details have the button; the new run opens.
    await node(page, "fetch").click()
    await page.get_by_test_id("rerun-from-node").click()
    second = await check_rerun(first)
    # The copied node says so in its details, with a link to the run it came from.
    await node(page, "start").click()
    await expect(page.get_by_test_id("node-panel-copied")).to_be_visible()
    await expect(page.get_by_test_id("node-copied-from-link")).to_have_attribute(
        "data-run-id", first
    )
    await node(page, "fetch").click()
    await expect(page.get_by_test_id("node-panel-copied")).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "rerun.png"))
    # From the REST API alone (a reload: no node.succeeded event says "copied"): the same.
    await page.reload()
    await expect(node(page, "start")).to_have_attribute("data-copied", first)
    await expect(page.get_by_test_id("run-rerun-of-link")).to_have_attribute("data-run-id", first)

    # "Re-run failed": the failed node and what follows it run again, the rest is copied.
    await rerun_failed.click()
    third = await check_rerun(second)
    assert third != first
    await expect(page.get_by_test_id("history-item")).to_have_count(3)

    # The API's refusal is shown (here a 409 faked on the way, as a race would give).
    refusal = {"error": {"code": "nothing_to_rerun", "message": "nothing failed", "details": []}}
    await page.route(
        re.compile(r"/runs/[^/]+/rerun$"),
        lambda route: route.fulfill(status=409, json=refusal),
    )
    await rerun_failed.click()
    await expect(page.get_by_test_id("notice")).to_contain_text("nothing failed")
    await expect(page.get_by_test_id("notice")).to_contain_text("nothing_to_rerun")
    await node(page, "fetch").click()
    await page.get_by_test_id("rerun-from-node").click()
    await expect(page.get_by_test_id("node-rerun-error")).to_contain_text("nothing failed")
    assert page.url.endswith(third)

    # The re-run links back to the run it re-runs.
    await page.get_by_test_id("run-rerun-of-link").click()
    await expect(page).to_have_url(re.compile(f"/runs/{second}$"))
    await expect(node(page, "start")).to_have_attribute("data-copied", first)
    assert crashes == []
    await page.close()


async def test_schedules_show_with_their_next_fire_times(
    weft: WeftServer, browser: Browser, tmp_path: Path
) -> None:
    workflow = await weft.create_workflow(chain(["hello"]), name="on a cron")
    bare = await weft.create_workflow(chain(["solo"]), name="no cron")
    schedules = f"/workflows/{workflow['id']}/schedules"
    created = await weft.client.post(
        schedules,
        json={"cron": "0 7 * * 1-5", "timezone": "Europe/Paris", "payload": {"report": "daily"}},
    )
    assert created.status_code == 201, created.text
    weekdays = created.json()
    created = await weft.client.post(
        schedules, json={"cron": "30 18 * * *", "timezone": "America/New_York", "enabled": False}
    )
    assert created.status_code == 201, created.text
    paused = created.json()
    assert weekdays["next_fire_at"]
    assert paused["next_fire_at"] is None

    # The browser is in Paris (a weekday 07:00 there shows as 07:00), its clock faked (it
    # still ticks) so that the test can skip ahead to the 30 s refresh.
    context = await browser.new_context(
        viewport=VIEWPORT, timezone_id="Europe/Paris", locale="en-GB"
    )
    try:
        page = await context.new_page()
        crashes: list[str] = []
        page.on("pageerror", lambda exc: crashes.append(str(exc)))
        await page.clock.install()
        await open_workflow(page, weft, workflow)
        box = page.get_by_test_id("schedules")
        rows = page.get_by_test_id("schedule")
        await expect(rows).to_have_count(2)
        on = rows.and_(page.locator(f'[data-schedule-id="{weekdays["id"]}"]'))
        off = rows.and_(page.locator(f'[data-schedule-id="{paused["id"]}"]'))

        async def check_enabled(next_fire_at: str) -> None:
            await expect(on).to_have_attribute("data-enabled", "true")
            await expect(on.get_by_test_id("schedule-cron")).to_have_text("0 7 * * 1-5")
            await expect(on.get_by_test_id("schedule-timezone")).to_have_text("Europe/Paris")
            await expect(on.get_by_test_id("schedule-state")).to_have_text("enabled")
            shown = on.get_by_test_id("schedule-next")
            await expect(shown).to_have_attribute("datetime", next_fire_at)  # as the API says
            await expect(shown).to_have_text(re.compile(r"^(Mon|Tue|Wed|Thu|Fri)\b.*\b07:00$"))
            await expect(on.get_by_test_id("schedule-next-relative")).to_have_text(
                re.compile(r"^in (<1 min|\d+ min|\d+ h|\d+ d( \d+ h)?)$")
            )

        # Both, with cron and zone; the enabled one's next fire time; the other disabled.
        await check_enabled(weekdays["next_fire_at"])
        await expect(on.get_by_test_id("schedule-last")).to_have_text("never")
        await expect(off).to_have_attribute("data-enabled", "false")
        await expect(off.get_by_test_id("schedule-cron")).to_have_text("30 18 * * *")
        await expect(off.get_by_test_id("schedule-timezone")).to_have_text("America/New_York")
        await expect(off.get_by_test_id("schedule-state")).to_have_text("disabled")
        await expect(off.get_by_test_id("schedule-next")).to_have_text("—")
        await page.screenshot(path=str(tmp_path / "schedules.png"))

        # The slot comes (the server's scheduler clock moved to it): a run, marked "schedule"
        # with a clock in the history, and a workflow selected again shows the next slot.
        scheduler = weft.system.runtime.scheduler
        assert scheduler is not None
        slot = datetime.fromisoformat(weekdays["next_fire_at"])
        real_clock = scheduler.clock
        scheduler.clock = lambda: slot + timedelta(seconds=1)
        try:
            await scheduler.fire_due()  # (none left to fire if the real clock got there first)
        finally:
            scheduler.clock = real_clock
        fired = (await weft.client.get(f"/schedules/{weekdays['id']}")).json()
        assert datetime.fromisoformat(fired["last_fired_at"]) == slot
        item = page.get_by_test_id("history-item")
        await expect(item).to_have_count(1)
        await expect(item.get_by_test_id("history-trigger")).to_have_attribute(
            "data-trigger", "schedule"
        )
        await expect(item.get_by_test_id("history-trigger")).to_have_text("schedule")
        await expect(item.locator(".clock")).to_have_count(1)
        await page.locator(f'[data-workflow-id="{workflow["id"]}"]').click()
        await check_enabled(fired["next_fire_at"])
        last = on.get_by_test_id("schedule-last")
        await expect(last).to_have_attribute("datetime", fired["last_fired_at"])
        await expect(last).not_to_have_text("never")
        # A run of another kind has no clock.
        await weft.run(workflow["id"])
        await expect(item).to_have_count(2)
        await expect(item.first.get_by_test_id("history-trigger")).to_have_attribute(
            "data-trigger", "manual"
        )
        await expect(item.first.locator(".clock")).to_have_count(0)
        await page.screenshot(path=str(tmp_path / "scheduled-run.png"))

        # Read again every 30 s: one deleted elsewhere goes.
        deleted = await weft.client.delete(f"/schedules/{paused['id']}")
        assert deleted.status_code == 204, deleted.text
        await page.clock.fast_forward("00:31")
        await expect(rows).to_have_count(1)
        await expect(off).to_have_count(0)

        # A workflow without schedules says so.
        await page.locator(f'[data-workflow-id="{bare["id"]}"]').click()
        await expect(page.get_by_test_id("workflow-name")).to_have_text("no cron")
        await expect(page.get_by_test_id("schedules-empty")).to_have_text("no schedules")
        await expect(rows).to_have_count(0)
        await expect(box).to_have_attribute("data-state", "none")
        assert crashes == []
    finally:
        await context.close()
