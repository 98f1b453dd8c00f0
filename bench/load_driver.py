"""The webhook load driver, run in its own process (`python -m bench.load_driver`):
`concurrency` closed-loop workers POST to a hook for a warm-up, then `repetitions`
back-to-back windows; each window reports completed requests/s and p50/p99 latency.
A non-2xx answer or a transport error is an error (not in the latencies)."""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass

import anyio
import httpx

from bench.stats import percentile

# Beyond the hook's own ?wait=30, so a slow answer is a slow answer, not a timeout.
REQUEST_TIMEOUT_S = 40.0
BODY = b'{"bench": true}'


@dataclass(frozen=True)
class Window:
    """One repetition of a cell."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int


async def drive(
    url: str, concurrency: int, repetitions: int, window_s: float, warmup_s: float
) -> tuple[list[Window], dict[str, int]]:
    """Load `url` and cut what completed into `repetitions` windows of `window_s` seconds."""
    headers = {"content-type": "application/json"}
    completed: list[tuple[float, float, bool]] = []  # (finished at, latency s, ok)
    error_kinds: Counter[str] = Counter()
    # A client (one keep-alive connection) per worker: httpcore's shared pool scans every
    # connection on each request, which made the driver itself the bottleneck at c=50.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # one for all: each costs ~30 ms to load (plain http)
    clients = [
        httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, verify=tls)
        for _ in range(concurrency)
    ]
    measure_from = time.perf_counter() + warmup_s
    stop_at = measure_from + repetitions * window_s

    async def worker(client: httpx.AsyncClient) -> None:
        async with client:
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=BODY, headers=headers)
                    ok = 200 <= response.status_code < 300
                    kind = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                done = time.perf_counter()
                completed.append((done, done - sent, ok))
                if not ok and done >= measure_from:
                    error_kinds[kind] += 1

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(worker, client)

    windows = []
    for i in range(repetitions):
        begin = measure_from + i * window_s
        inside = [(lat, ok) for at, lat, ok in completed if begin <= at < begin + window_s]
        latencies = [lat * 1000 for lat, ok in inside if ok]
        windows.append(
            Window(
                requests_per_s=len(latencies) / window_s,
                p50_ms=percentile(latencies, 50),
                p99_ms=percentile(latencies, 99),
                ok=len(latencies),
                errors=len(inside) - len(latencies),
            )
        )
    return windows, dict(error_kinds)


async def run_driver(
    url: str, concurrency: int, repetitions: int, window_s: float, warmup_s: float
) -> tuple[list[Window], dict[str, int]]:
    """Run the driver in a child process (the bench process is not the load's bottleneck
    and the measurement is not skewed by the bench's own event loop); returns its windows."""
    command = [
        sys.executable,
        "-m",
        "bench.load_driver",
        url,
        f"--concurrency={concurrency}",
        f"--repetitions={repetitions}",
        f"--window={window_s}",
        f"--warmup={warmup_s}",
    ]
    result = await anyio.run_process(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the load driver failed:\n{result.stderr.decode(errors='replace')}")
    data = json.loads(result.stdout)
    return [Window(**w) for w in data["windows"]], dict(data["error_kinds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_driver", description=__doc__)
    parser.add_argument("url", help="the full URL to POST to, e.g. http://…/hooks/x?wait=30")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--window", type=float, default=1.0, help="seconds per repetition")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the first")
    args = parser.parse_args(argv)
    windows, error_kinds = anyio.run(
        drive, args.url, args.concurrency, args.repetitions, args.window, args.warmup
    )
    json.dump({"windows": [asdict(w) for w in windows], "error_kinds": error_kinds}, sys.stdout)


if __name__ == "__main__":
    main()
