"""The scenarios measured against weft over HTTP and websockets; each returns its figures.

Every scenario does one untimed warm-up of what it measures, then `repetitions` timed ones.
"""

from __future__ import annotations

import functools
import json
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
import psutil
from websockets.asyncio.client import connect

from bench import graphs
from bench.load_driver import Window, run_driver
from bench.report import Figure
from bench.server import ServerProcess, free_port, new_data_dir, remove_data_dir
from bench.stats import percentile

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
TLS = ssl.create_default_context()  # shared: each client would load its own (~30 ms)
RUN_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """weft did not do what a scenario needs (an unexpected status, a failed run)."""


def epoch(iso: str) -> float:
    """Seconds since the epoch of an ISO 8601 timestamp with an offset."""
    return datetime.fromisoformat(iso).timestamp()


def run_seconds(run: dict[str, Any]) -> float:
    """A finished run's duration (started → finished), to the microsecond."""
    return epoch(run["finished_at"]) - epoch(run["started_at"])


def expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    if response.status_code not in statuses:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class Submitted:
    """Runs started at once: their ids, when the first POST went out (epoch seconds), and
    the seconds until every POST was answered."""

    ids: list[str]
    first_sent: float
    seconds: float


@dataclass
class Bench:
    """A running weft server, an HTTP client on it, and the suite's settings."""

    server: ServerProcess
    client: httpx.AsyncClient
    repetitions: int
    progress: Callable[[str], None]
    # The floor's database, when the floor is measured too (the webhook floor uses it).
    floor_dsn: str | None = None

    async def create_workflow(
        self, graph: graphs.Graph, slug: str | None = None, durability: str = "sync"
    ) -> str:
        body: dict[str, Any] = {
            "name": f"bench {uuid.uuid4().hex[:8]}",
            "graph": graph,
            "durability": durability,
        }
        if slug is not None:
            body["webhook_slug"] = slug
        created = expect(await self.client.post("/workflows", json=body), 201)
        return str(created["id"])

    async def run_waiting(self, workflow_id: str) -> tuple[float, dict[str, Any]]:
        """POST a run with ?wait=60; returns the seconds until the answer and the run."""
        sent = time.perf_counter()
        response = await self.client.post(f"/workflows/{workflow_id}/run?wait=60", json={})
        elapsed = time.perf_counter() - sent
        run = expect(response, 200)
        if run["status"] != "succeeded":
            raise BenchError(f"run {run['id']} {run['status']}: {run.get('error')}")
        return elapsed, run

    async def submit(self, workflow_id: str, count: int, connections: int) -> Submitted:
        """POST `count` runs (no wait) over `connections` connections at once, each its own
        client (httpcore's shared pool costs O(connections) per request)."""
        ids: list[str] = []
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [
            httpx.AsyncClient(base_url=self.server.url, timeout=60, limits=limits, verify=TLS)
            for _ in range(min(connections, count))
        ]

        async def post(client: httpx.AsyncClient, runs: int) -> None:
            async with client:
                for _ in range(runs):
                    response = await client.post(f"/workflows/{workflow_id}/run", json={})
                    ids.append(str(expect(response, 202)["id"]))

        first_sent, started = time.time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i, client in enumerate(clients):
                tg.start_soon(post, client, len(range(i, count, len(clients))))
        return Submitted(ids, first_sent, time.perf_counter() - started)


async def finished_runs(
    client: httpx.AsyncClient, workflow_id: str, ids: set[str]
) -> list[dict[str, Any]] | None:
    """The runs `ids` of the workflow (paging GET /workflows/{id}/runs) once every one has
    finished, else None."""
    found: dict[str, dict[str, Any]] = {}
    before: str | None = None
    while len(found) < len(ids):
        params: dict[str, Any] = {"limit": 200}
        if before is not None:
            params["before"] = before
        page = expect(await client.get(f"/workflows/{workflow_id}/runs", params=params), 200)
        found.update((r["id"], r) for r in page["items"] if r["id"] in ids)
        before = page["next_before"]
        if before is None:
            break
    runs = list(found.values())
    if len(runs) < len(ids) or any(r["status"] not in FINISHED for r in runs):
        return None
    failed = [r for r in runs if r["status"] != "succeeded"]
    if failed:
        raise BenchError(f"{len(failed)} run(s) did not succeed, e.g. {failed[0]}")
    return runs


async def wait_all_finished(
    client: httpx.AsyncClient,
    workflow_id: str,
    ids: set[str],
    poll_s: float,
    on_health: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Poll the cheap /healthz until no run is in flight, then confirm with the run list."""
    with anyio.fail_after(RUN_TIMEOUT_S):
        while True:
            health = expect(await client.get("/healthz"), 200)
            if on_health is not None:
                on_health(health)
            if health["runs_in_flight"] == 0:
                runs = await finished_runs(client, workflow_id, ids)
                if runs is not None:
                    return runs
            await anyio.sleep(poll_s)


# -- single runs: chain100, fanout100, sleepy-fanout, skewed-branches ---------------------


async def single_runs(
    bench: Bench,
    scenario: str,
    graph: graphs.Graph,
    per_node: int | None = None,
    durability: str = "sync",
) -> list[Figure]:
    """One run at a time with ?wait: client total and server-side run duration (with
    `durability` other than sync, only the per-node figure, under its own key)."""
    workflow_id = await bench.create_workflow(graph, durability=durability)
    await bench.run_waiting(workflow_id)
    totals, durations = [], []
    for i in range(bench.repetitions):
        elapsed, run = await bench.run_waiting(workflow_id)
        totals.append(elapsed * 1000)
        durations.append(run_seconds(run) * 1000)
        bench.progress(
            f"{scenario} ({durability}) {i + 1}/{bench.repetitions}: {totals[-1]:.1f} ms "
            f"(run {durations[-1]:.1f} ms)"
        )
    if durability != "sync":
        assert per_node
        per_node_us = [d * 1000 / per_node for d in durations]
        label = f"per node, durability {durability}"
        return [Figure(scenario, f"{durability}_per_node_us", label, "µs", per_node_us)]
    figures = [
        Figure(scenario, "total_ms", "total: POST ?wait=60 → answer", "ms", totals),
        Figure(scenario, "run_ms", "run duration_ms (server)", "ms", durations),
    ]
    if per_node:
        per_node_us = [d * 1000 / per_node for d in durations]
        label = f"per node: run duration / {per_node}"
        figures.append(Figure(scenario, "per_node_us", label, "µs", per_node_us))
    return figures


async def chain100(bench: Bench) -> list[Figure]:
    graph = graphs.chain(100)
    sync = await single_runs(bench, "chain100", graph, per_node=100)
    return sync + await single_runs(bench, "chain100", graph, 100, durability="async")


async def fanout100(bench: Bench) -> list[Figure]:
    graph = graphs.fanout(100)
    sync = await single_runs(bench, "fanout100", graph, per_node=100)
    return sync + await single_runs(bench, "fanout100", graph, 100, durability="async")


async def sleepy_fanout(bench: Bench) -> list[Figure]:
    return await single_runs(bench, "sleepy-fanout", graphs.SLEEPY_FANOUT)


async def skewed_branches(bench: Bench) -> list[Figure]:
    return await single_runs(bench, "skewed-branches", graphs.SKEWED_BRANCHES)


# -- runs/s ---------------------------------------------------------------------------------


CONCURRENT_RUNS = 200


async def burst(
    bench: Bench, workflow_id: str, count: int, *, batch: bool = False
) -> tuple[float, float]:
    """Submit `count` runs at once (one POST each, or one batch POST); returns (runs/s from
    the first submit until the last run's finished_at, seconds until submitted)."""
    if batch:
        first_sent, started = time.time(), time.perf_counter()
        response = await bench.client.post(
            f"/workflows/{workflow_id}/runs/batch", json={"runs": [{}] * count}
        )
        submitted = Submitted(
            [r["id"] for r in expect(response, 202)["items"]],
            first_sent,
            time.perf_counter() - started,
        )
    else:
        submitted = await bench.submit(workflow_id, count, connections=count)
    runs = await wait_all_finished(bench.client, workflow_id, set(submitted.ids), poll_s=0.025)
    last_finished = max(epoch(r["finished_at"]) for r in runs)
    return count / (last_finished - submitted.first_sent), submitted.seconds


async def runs_per_second(bench: Bench) -> list[Figure]:
    workflow_id = await bench.create_workflow(graphs.short_chain(2))
    await burst(bench, workflow_id, CONCURRENT_RUNS)
    await burst(bench, workflow_id, CONCURRENT_RUNS, batch=True)
    rates, submits, batch_rates = [], [], []
    for i in range(bench.repetitions):
        rate, submitted = await burst(bench, workflow_id, CONCURRENT_RUNS)
        rates.append(rate)
        submits.append(submitted * 1000)
        batch_rates.append((await burst(bench, workflow_id, CONCURRENT_RUNS, batch=True))[0])
        bench.progress(
            f"runs-per-s {i + 1}/{bench.repetitions}: {rate:.0f} runs/s "
            f"({batch_rates[-1]:.0f} runs/s as one batch)"
        )
    what = f"{CONCURRENT_RUNS} 3-node runs at once, to the last finish"
    return [
        Figure("runs-per-s", "runs_per_s", f"{what}, one POST each", "runs/s", rates, rate=True),
        Figure("runs-per-s", "submit_ms", f"all {CONCURRENT_RUNS} POSTs answered", "ms", submits),
        Figure(
            "runs-per-s",
            "batch_runs_per_s",
            f"{what}, one POST /runs/batch",
            "runs/s",
            batch_rates,
            rate=True,
        ),
    ]


# -- webhook load ---------------------------------------------------------------------------

WEBHOOK_GRAPHS = (("2-node", 1), ("10-node", 9))  # start → N transforms
WEBHOOK_CONCURRENCY = (1, 10, 50)
WEBHOOK_WINDOW_S = 1.5
WEBHOOK_WARMUP_S = 1.0


@asynccontextmanager
async def http_floor(dsn: str, transforms: int) -> AsyncIterator[str]:
    """The webhook floor (`bench.http_floor`) in its own process; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "bench.http_floor", f"--port={port}", f"--dsn={dsn}"]
    process = await anyio.open_process(
        [*command, f"--transforms={transforms}"], stdout=None, stderr=None
    )
    try:
        with anyio.fail_after(30):
            while True:
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    if process.returncode is not None:
                        raise BenchError("the webhook floor server exited") from None
                    await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        with anyio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def webhook(bench: Bench) -> list[Figure]:
    """The load driver (its own process) on each graph's hook at each concurrency; with the
    floor, also on the webhook floor server doing the same graph's floor work."""
    figures = []
    for name, transforms in WEBHOOK_GRAPHS:
        slug = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        await bench.create_workflow(graphs.short_chain(transforms), slug=slug)
        url = f"{bench.server.url}/hooks/{slug}?wait=30"
        floors: dict[int, list[Window]] = {}
        if bench.floor_dsn is not None:
            async with http_floor(bench.floor_dsn, transforms) as floor_url:
                for concurrency in WEBHOOK_CONCURRENCY:
                    floors[concurrency], _ = await run_driver(
                        floor_url,
                        concurrency,
                        bench.repetitions,
                        WEBHOOK_WINDOW_S,
                        WEBHOOK_WARMUP_S,
                    )
        for concurrency in WEBHOOK_CONCURRENCY:
            windows, error_kinds = await run_driver(
                url, concurrency, bench.repetitions, WEBHOOK_WINDOW_S, WEBHOOK_WARMUP_S
            )
            cell = f"{name} c={concurrency}"
            rates = [w.requests_per_s for w in windows]
            bench.progress(
                f"webhook {cell}: {', '.join(f'{r:.0f}' for r in rates)} req/s"
                + (f"; errors {error_kinds}" if error_kinds else "")
            )
            p50s, p99s = [w.p50_ms for w in windows], [w.p99_ms for w in windows]
            floor = floors.get(concurrency, [])
            figures += [
                Figure(
                    "webhook",
                    f"{cell} req_s",
                    f"{cell} completed",
                    "req/s",
                    rates,
                    rate=True,
                    floor_samples=[w.requests_per_s for w in floor],
                ),
                Figure(
                    "webhook",
                    f"{cell} p50_ms",
                    f"{cell} p50",
                    "ms",
                    p50s,
                    floor_samples=[w.p50_ms for w in floor],
                ),
                Figure(
                    "webhook",
                    f"{cell} p99_ms",
                    f"{cell} p99",
                    "ms",
                    p99s,
                    floor_samples=[w.p99_ms for w in floor],
                ),
                Figure(
                    "webhook",
                    f"{cell} errors",
                    f"{cell} non-2xx or failed",
                    "count",
                    [float(w.errors) for w in windows],
                    summed=True,
                ),
            ]
    return figures


# -- websocket latency ----------------------------------------------------------------------

SUBSCRIBERS = 100
WS_CHAIN = 20
WS_STEP_S = 0.05
WS_GATE_S = 1.0  # the first node waits this long while the subscribers connect
NODE_SUCCEEDED = '"node.succeeded"'


async def subscriber(url: str, latencies: list[float], *, deflate: bool = True) -> None:
    """Read a run's socket until it closes; a latency (ms) per node.succeeded event.
    `deflate`: offer permessage-deflate, as browsers do (Hypercorn then always uses it)."""
    compression = "deflate" if deflate else None
    async with connect(
        url, max_size=None, ping_interval=None, open_timeout=30, compression=compression
    ) as ws:
        async for message in ws:
            received = time.time()
            text = message.decode() if isinstance(message, bytes) else message
            if NODE_SUCCEEDED in text:
                event = json.loads(text)
                if event["type"] == "node.succeeded":
                    latencies.append((received - epoch(event["ts"])) * 1000)


async def watched_run(
    bench: Bench,
    workflow_id: str,
    subscribers: int,
    *,
    deflate: bool = True,
    watch_url: str | None = None,
) -> list[float]:
    """Start a run and watch it with `subscribers` websockets (on `watch_url`, another
    process, when given); returns every latency (ms)."""
    run = expect(await bench.client.post(f"/workflows/{workflow_id}/run", json={}), 202)
    base = watch_url or bench.server.url
    url = base.replace("http://", "ws://", 1) + f"/ws/runs/{run['id']}"
    latencies: list[float] = []
    with anyio.fail_after(RUN_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            for _ in range(subscribers):
                tg.start_soon(functools.partial(subscriber, url, latencies, deflate=deflate))
    return latencies


async def websocket_latency(bench: Bench) -> list[Figure]:
    workflow_id = await bench.create_workflow(graphs.delayed_chain(WS_GATE_S, WS_CHAIN, WS_STEP_S))
    await watched_run(bench, workflow_id, SUBSCRIBERS)
    p50s, p99s, counts, plain_p50s, plain_p99s = [], [], [], [], []
    for i in range(bench.repetitions):
        latencies = await watched_run(bench, workflow_id, SUBSCRIBERS)
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        counts.append(float(len(latencies)))
        plain = await watched_run(bench, workflow_id, SUBSCRIBERS, deflate=False)
        plain_p50s.append(percentile(plain, 50))
        plain_p99s.append(percentile(plain, 99))
        bench.progress(
            f"websocket {i + 1}/{bench.repetitions}: p50 {p50s[-1]:.1f} ms, "
            f"p99 {p99s[-1]:.1f} ms over {len(latencies)} events; without compression "
            f"p50 {plain_p50s[-1]:.1f} ms, p99 {plain_p99s[-1]:.1f} ms"
        )
    what = f"{SUBSCRIBERS} subscribers, node.succeeded receive - ts"
    without = "without permessage-deflate"
    return [
        Figure("websocket", "p50_ms", f"p50, {what}", "ms", p50s),
        Figure("websocket", "p99_ms", f"p99, {what}", "ms", p99s),
        Figure("websocket", "events", "node.succeeded events seen", "count", counts, summed=True),
        Figure("websocket", "plain_p50_ms", f"p50, {without}", "ms", plain_p50s),
        Figure("websocket", "plain_p99_ms", f"p99, {without}", "ms", plain_p99s),
    ]


# -- memory and start-up (servers of their own) -----------------------------------------------

IN_FLIGHT_RUNS = 1000
IN_FLIGHT_DELAY_S = 3.0
IN_FLIGHT_CONNECTIONS = 100
RSS_SAMPLE_S = 0.05
IDLE_SETTLE_S = 1.0
MB = 1024 * 1024


async def in_flight_peak(server: ServerProcess, progress: Callable[[str], None]) -> tuple[int, int]:
    """Submit IN_FLIGHT_RUNS single-delay runs at once; sample the server's RSS until all
    have finished. Returns (peak RSS bytes, most runs in flight seen by /healthz)."""
    process = psutil.Process(server.pid)
    peak = process.memory_info().rss
    most_in_flight = 0
    done = anyio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await anyio.sleep(RSS_SAMPLE_S)

    def on_health(health: dict[str, Any]) -> None:
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, int(health["runs_in_flight"]))

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
        httpx.AsyncClient(base_url=server.url, timeout=60) as monitor,
        anyio.create_task_group() as tg,
    ):
        bench = Bench(server, client, 1, progress)
        workflow_id = await bench.create_workflow(graphs.single_delay(IN_FLIGHT_DELAY_S))
        tg.start_soon(sample)

        async def watch() -> None:
            while True:  # until cancelled
                on_health(expect(await monitor.get("/healthz"), 200))
                await anyio.sleep(0.1)

        tg.start_soon(watch)
        submitted = await bench.submit(workflow_id, IN_FLIGHT_RUNS, IN_FLIGHT_CONNECTIONS)
        ids = set(submitted.ids)
        await wait_all_finished(monitor, workflow_id, ids, poll_s=0.1, on_health=on_health)
        done.set()
        tg.cancel_scope.cancel()
    return peak, most_in_flight


async def memory(repetitions: int, progress: Callable[[str], None]) -> list[Figure]:
    """Per repetition, on a fresh data directory: cold start, idle RSS, peak RSS with
    IN_FLIGHT_RUNS runs in flight; then a warm start on the same directory; and a first
    start as on a new machine (no cached database cluster: initdb)."""
    colds, warms, firsts, idles, peaks, in_flight = [], [], [], [], [], []
    for i in range(repetitions):
        data_dir, empty_cache = new_data_dir(), new_data_dir()
        try:
            first = ServerProcess(new_data_dir(), {"XDG_CACHE_HOME": str(empty_cache)})
            try:
                firsts.append(await anyio.to_thread.run_sync(first.start) * 1000)
            finally:
                await anyio.to_thread.run_sync(first.stop)
                remove_data_dir(first.data_dir)
            server = ServerProcess(data_dir)
            colds.append(await anyio.to_thread.run_sync(server.start) * 1000)
            try:
                await anyio.sleep(IDLE_SETTLE_S)
                idles.append(server.rss_bytes() / MB)
                peak, most = await in_flight_peak(server, progress)
                peaks.append(peak / MB)
                in_flight.append(float(most))
            finally:
                await anyio.to_thread.run_sync(server.stop)
            again = ServerProcess(data_dir)
            warms.append(await anyio.to_thread.run_sync(again.start) * 1000)
            await anyio.to_thread.run_sync(again.stop)
        finally:
            remove_data_dir(data_dir)
            remove_data_dir(empty_cache)
        progress(
            f"memory {i + 1}/{repetitions}: first {firsts[-1]:.0f} ms, cold {colds[-1]:.0f} ms, "
            f"warm {warms[-1]:.0f} ms, "
            f"idle {idles[-1]:.0f} MB, peak {peaks[-1]:.0f} MB ({most} in flight)"
        )
    return [
        Figure("memory", "idle_rss_mb", "RSS idle after start", "MB", idles),
        Figure(
            "memory",
            "peak_rss_mb",
            f"peak RSS, {IN_FLIGHT_RUNS} runs of delay {IN_FLIGHT_DELAY_S:g} s",
            "MB",
            peaks,
        ),
        Figure("memory", "in_flight", "most runs in flight (/healthz)", "runs", in_flight),
        Figure(
            "memory",
            "cold_start_ms",
            "cold start, new data dir: launch → 200 /healthz",
            "ms",
            colds,
        ),
        Figure("memory", "warm_start_ms", "warm start (same data dir)", "ms", warms),
        Figure(
            "memory",
            "first_start_ms",
            "first start on a machine (no cached cluster: initdb)",
            "ms",
            firsts,
        ),
    ]
