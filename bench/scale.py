"""Scenarios on servers of their own: `scale` (one `weft serve` with WEB_CONCURRENCY=1,
then =2, under the same loads) and `cross-process` (a run executing on one process,
watched live by websockets on another, both on one database)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import anyio
import httpx

from bench import graphs
from bench.load_driver import run_burst, run_driver
from bench.report import Figure
from bench.scenarios import (
    CONCURRENT_RUNS,
    SUBSCRIBERS,
    WEBHOOK_WARMUP_S,
    WEBHOOK_WINDOW_S,
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


async def _measure_workers(
    workers: int, repetitions: int, progress: Callable[[str], None]
) -> tuple[list[float], list[float]]:
    """Webhook 2-node req/s at c=50, and runs/s of a burst, on a server with `workers`."""
    data_dir = new_data_dir()
    server = ServerProcess(data_dir, {"WEB_CONCURRENCY": str(workers)})
    try:
        await anyio.to_thread.run_sync(server.start)
        async with httpx.AsyncClient(base_url=server.url, timeout=90) as client:
            bench = Bench(server, client, repetitions, progress)
            slug = f"bench-scale-{uuid.uuid4().hex[:8]}"
            await bench.create_workflow(graphs.short_chain(1), slug=slug)
            windows, _ = await run_driver(
                f"{server.url}/hooks/{slug}?wait=30",
                SCALE_CONCURRENCY,
                repetitions,
                WEBHOOK_WINDOW_S,
                WEBHOOK_WARMUP_S,
            )
            webhook = [w.requests_per_s for w in windows]
            workflow_id = await bench.create_workflow(graphs.short_chain(2))
            # Driven from a process of its own as the webhook load is: from the bench's
            # event loop, 200 POSTs at once measured the client (0.98x with 2 workers).
            url = f"{server.url}/workflows/{workflow_id}/run?wait=60"
            await run_burst(url, CONCURRENT_RUNS)
            bursts = []
            for _ in webhook:
                rate, errors = await run_burst(url, CONCURRENT_RUNS)
                if errors:
                    raise RuntimeError(f"{errors} of {CONCURRENT_RUNS} burst runs failed")
                bursts.append(rate)
        progress(
            f"scale, {workers} worker(s): webhook {', '.join(f'{r:.0f}' for r in webhook)} "
            f"req/s; bursts {', '.join(f'{r:.0f}' for r in bursts)} runs/s"
        )
        return webhook, bursts
    except Exception:
        progress(f"weft server log (tail):\n{server.log_tail()}")
        raise
    finally:
        await anyio.to_thread.run_sync(server.stop)
        remove_data_dir(data_dir)


async def scale(repetitions: int, progress: Callable[[str], None]) -> list[Figure]:
    measured = {w: await _measure_workers(w, repetitions, progress) for w in SCALE_WORKERS}
    (one_hook, one_burst), (two_hook, two_burst) = measured[1], measured[2]
    figures = []
    for workers, (hook, bursts) in measured.items():
        figures += [
            Figure(
                "scale",
                f"w{workers}_webhook_req_s",
                f"WEB_CONCURRENCY={workers}: webhook 2-node c={SCALE_CONCURRENCY}",
                "req/s",
                hook,
                rate=True,
            ),
            Figure(
                "scale",
                f"w{workers}_runs_per_s",
                f"WEB_CONCURRENCY={workers}: {CONCURRENT_RUNS} 3-node runs at once",
                "runs/s",
                bursts,
                rate=True,
            ),
        ]
    return [
        *figures,
        Figure(
            "scale",
            "webhook_ratio",
            "webhook req/s, 2 workers / 1",
            "x",
            [b / a for a, b in zip(one_hook, two_hook, strict=True)],
        ),
        Figure(
            "scale",
            "runs_ratio",
            "runs/s, 2 workers / 1",
            "x",
            [b / a for a, b in zip(one_burst, two_burst, strict=True)],
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
