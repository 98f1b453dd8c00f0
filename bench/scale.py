"""Scenarios on servers of their own: `scale` (`weft serve` with WEB_CONCURRENCY=1 and
=2, loaded in turn under the same loads) and `cross-process` (a run executing on one process,
watched live by websockets on another, both on one database)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx

from bench import graphs
from bench.load_driver import run_burst, run_driver
from bench.report import Figure
from bench.scenarios import (
    CONCURRENT_RUNS,
    SUBSCRIBERS,
    WEBHOOK_WARMUP_S,
    WS_CHAIN,
    WS_GATE_S,
    WS_STEP_S,
    Bench,
    watched_run,
)
from bench.server import ServerProcess, new_data_dir, remove_data_dir
from bench.stats import percentile

SCALE_WORKERS = (1, 2)
SCALE_CONCURRENCY = 50
# Longer than the webhook scenario's window: each figure here is one window, not a median
# of a driver's several.
SCALE_WINDOW_S = 3.0
SCALE_BURSTS = 3


@dataclass
class _Target:
    """One server under test and what the scenario posts to."""

    workers: int
    server: ServerProcess
    hook_url: str = ""
    run_url: str = ""
    webhook: list[float] = field(default_factory=list)
    bursts: list[float] = field(default_factory=list)


async def _prepare(target: _Target, repetitions: int, progress: Callable[[str], None]) -> None:
    await anyio.to_thread.run_sync(target.server.start)
    async with httpx.AsyncClient(base_url=target.server.url, timeout=90) as client:
        bench = Bench(target.server, client, repetitions, progress)
        slug = f"bench-scale-{uuid.uuid4().hex[:8]}"
        await bench.create_workflow(graphs.short_chain(1), slug=slug)
        workflow_id = await bench.create_workflow(graphs.short_chain(2))
    target.hook_url = f"{target.server.url}/hooks/{slug}?wait=30"
    target.run_url = f"{target.server.url}/workflows/{workflow_id}/run?wait=60"


async def _webhook_window(target: _Target) -> float:
    windows, _ = await run_driver(
        target.hook_url, SCALE_CONCURRENCY, 1, SCALE_WINDOW_S, WEBHOOK_WARMUP_S
    )
    return windows[0].requests_per_s


async def _bursts(target: _Target) -> float:
    """Runs/s over SCALE_BURSTS bursts of CONCURRENT_RUNS runs (one lasts under a second:
    alone, the machine's noise would be most of the figure)."""
    seconds = 0.0
    for _ in range(SCALE_BURSTS):
        # Driven from a process of its own as the webhook load is: from the bench's event
        # loop, 200 POSTs at once measured the client (0.98x with 2 workers).
        rate, errors = await run_burst(target.run_url, CONCURRENT_RUNS)
        if errors:
            raise RuntimeError(f"{errors} of {CONCURRENT_RUNS} burst runs failed")
        seconds += CONCURRENT_RUNS / rate
    return SCALE_BURSTS * CONCURRENT_RUNS / seconds


async def scale(repetitions: int, progress: Callable[[str], None]) -> list[Figure]:
    """WEB_CONCURRENCY=1 and =2 side by side: both servers run at once (each on its own
    data dir and embedded database) and are loaded in turn, one window each, in ABBA order,
    so that the shared machine's drift over the minutes this takes falls on both alike and
    each ratio compares two neighbouring windows."""
    targets = [
        _Target(w, ServerProcess(new_data_dir(), {"WEB_CONCURRENCY": str(w)}))
        for w in SCALE_WORKERS
    ]
    try:
        for target in targets:
            await _prepare(target, repetitions, progress)
        for target in targets:  # untimed warm-up of each load
            await _webhook_window(target)
            await _bursts(target)
        for i in range(repetitions):
            order = targets if i % 2 == 0 else targets[::-1]
            for target in order:
                target.webhook.append(await _webhook_window(target))
            for target in order:
                target.bursts.append(await _bursts(target))
            progress(
                f"scale {i + 1}/{repetitions}: "
                + "; ".join(
                    f"{t.workers} worker(s) webhook {t.webhook[-1]:.0f} req/s, "
                    f"burst {t.bursts[-1]:.0f} runs/s"
                    for t in targets
                )
            )
    except Exception:
        for target in targets:
            progress(f"weft server log (tail):\n{target.server.log_tail()}")
        raise
    finally:
        for target in targets:
            await anyio.to_thread.run_sync(target.server.stop)
            remove_data_dir(target.server.data_dir)
    one, two = targets
    figures = []
    for target in targets:
        figures += [
            Figure(
                "scale",
                f"w{target.workers}_webhook_req_s",
                f"WEB_CONCURRENCY={target.workers}: webhook 2-node c={SCALE_CONCURRENCY}",
                "req/s",
                target.webhook,
                rate=True,
            ),
            Figure(
                "scale",
                f"w{target.workers}_runs_per_s",
                f"WEB_CONCURRENCY={target.workers}: {CONCURRENT_RUNS} 3-node runs at once "
                f"(x{SCALE_BURSTS})",
                "runs/s",
                target.bursts,
                rate=True,
            ),
        ]
    return [
        *figures,
        Figure(
            "scale",
            "webhook_ratio",
            "webhook req/s, 2 workers / 1 (paired windows)",
            "x",
            [b / a for a, b in zip(one.webhook, two.webhook, strict=True)],
        ),
        Figure(
            "scale",
            "runs_ratio",
            "runs/s, 2 workers / 1 (paired bursts)",
            "x",
            [b / a for a, b in zip(one.bursts, two.bursts, strict=True)],
        ),
    ]


async def cross_process(repetitions: int, progress: Callable[[str], None]) -> list[Figure]:
    """Node finished on A → node.succeeded received by websockets on B (100 of them)."""
    data_dir = new_data_dir()
    # Two processes on one data dir share its embedded database.
    a, b = ServerProcess(data_dir), ServerProcess(data_dir)
    try:
        await anyio.to_thread.run_sync(a.start)
        await anyio.to_thread.run_sync(b.start)
        async with httpx.AsyncClient(base_url=a.url, timeout=90) as client:
            bench = Bench(a, client, repetitions, progress)
            graph = graphs.delayed_chain(WS_GATE_S, WS_CHAIN, WS_STEP_S)
            workflow_id = await bench.create_workflow(graph)
            await watched_run(bench, workflow_id, SUBSCRIBERS, watch_url=b.url)
            p50s, p99s, counts = [], [], []
            for i in range(repetitions):
                latencies = await watched_run(bench, workflow_id, SUBSCRIBERS, watch_url=b.url)
                p50s.append(percentile(latencies, 50))
                p99s.append(percentile(latencies, 99))
                counts.append(float(len(latencies)))
                progress(
                    f"cross-process {i + 1}/{repetitions}: p50 {p50s[-1]:.1f} ms, "
                    f"p99 {p99s[-1]:.1f} ms over {len(latencies)} events"
                )
    except Exception:
        progress(f"weft server log (tail):\n{a.log_tail()}")
        raise
    finally:
        await anyio.to_thread.run_sync(b.stop)
        await anyio.to_thread.run_sync(a.stop)
        remove_data_dir(data_dir)
    what = f"run on A, {SUBSCRIBERS} websockets on B, node.succeeded receive - ts"
    return [
        Figure("cross-process", "p50_ms", f"p50, {what}", "ms", p50s),
        Figure("cross-process", "p99_ms", f"p99, {what}", "ms", p99s),
        Figure(
            "cross-process",
            "events",
            "node.succeeded events seen on B",
            "count",
            counts,
            summed=True,
        ),
    ]
