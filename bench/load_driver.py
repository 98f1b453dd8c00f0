"""The load driver, run in its own process (`python -m bench.load_driver`).

Closed loop (the default): `concurrency` workers POST to a URL for a warm-up, then
`repetitions` back-to-back windows; each window reports completed requests/s and p50/p99
latency. Burst (`--burst N`): N connections are opened, then one POST is sent on each at
once; it reports N divided by the seconds from the first sent to the last answered (with
`?wait`, the last run finished). A non-2xx answer or a transport error is an error."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import anyio

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
    completed: list[tuple[float, float, bool]] = []  # (finished at, latency s, ok)
    error_kinds: Counter[str] = Counter()
    host, port, request = post_request(url)
    measure_from = time.perf_counter() + warmup_s
    stop_at = measure_from + repetitions * window_s

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(request)
                with anyio.fail_after(REQUEST_TIMEOUT_S):
                    status, closing = await read_response(reader)
                ok, kind = 200 <= status < 300, f"HTTP {status}"
                if closing:  # Hypercorn ends a connection after 1,000 requests
                    writer.close()
                    connection = None
            except (OSError, EOFError, ValueError, TimeoutError) as exc:
                ok, kind = False, type(exc).__name__
                if connection is not None:
                    connection[1].close()
                connection = None
            done = time.perf_counter()
            completed.append((done, done - sent, ok))
            if not ok and done >= measure_from:
                error_kinds[kind] += 1
        if connection is not None:
            connection[1].close()

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)

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


def post_request(url: str, body: bytes = BODY) -> tuple[str, int, bytes]:
    """(host, port, the bytes of one POST of `body` to `url`)."""
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    path = target.path + (f"?{target.query}" if target.query else "")
    # HTTP/1.1 by hand on one keep-alive connection per worker: an HTTP client library cost
    # the driver half a core at 900 req/s, a core the server under test needed.
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return host, port, request


async def burst(url: str, count: int) -> tuple[float, int]:
    """POST `count` times at once, one per connection opened beforehand; returns (answers/s
    from the first sent to the last answered, errors). The body is `{}`: a run's default."""
    host, port, request = post_request(url, b"{}")
    connections = [await asyncio.open_connection(host, port) for _ in range(count)]
    errors = 0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        writer.write(request)
        try:
            with anyio.fail_after(REQUEST_TIMEOUT_S):
                status, _ = await read_response(reader)
            errors += not 200 <= status < 300
        except (OSError, EOFError, ValueError, TimeoutError):
            errors += 1
        writer.close()

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for reader, writer in connections:
            tg.start_soon(one, reader, writer)
    return count / (time.perf_counter() - began), errors


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response (its body by Content-Length or chunked); its status, and
    whether the server closes the connection after it (`Connection: close`)."""
    status_line = await reader.readline()
    parts = status_line.split(b" ", 2)
    if len(parts) < 2:
        raise EOFError(f"not an HTTP status line: {status_line[:40]!r}")
    status = int(parts[1])
    length, chunked, closing = 0, False, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            closing = True
    if not chunked:
        await reader.readexactly(length)
        return status, closing
    while size := int((await reader.readline()).split(b";")[0], 16):
        await reader.readexactly(size + 2)  # the chunk and its CRLF
    await reader.readline()  # the CRLF after the last (empty) chunk
    return status, closing


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


async def run_burst(url: str, count: int) -> tuple[float, int]:
    """`burst` in a child process (see run_driver); returns (answers/s, errors)."""
    command = [sys.executable, "-m", "bench.load_driver", url, f"--burst={count}"]
    result = await anyio.run_process(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the load driver failed:\n{result.stderr.decode(errors='replace')}")
    data = json.loads(result.stdout)
    return float(data["per_s"]), int(data["errors"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_driver", description=__doc__)
    parser.add_argument("url", help="the full URL to POST to, e.g. http://…/hooks/x?wait=30")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--window", type=float, default=1.0, help="seconds per repetition")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the first")
    parser.add_argument("--burst", type=int, default=0, help="POST this many at once, once")
    args = parser.parse_args(argv)
    if args.burst:
        per_s, errors = anyio.run(burst, args.url, args.burst, backend_options={"use_uvloop": True})
        json.dump({"per_s": per_s, "errors": errors}, sys.stdout)
        return
    windows, error_kinds = anyio.run(
        drive,
        args.url,
        args.concurrency,
        args.repetitions,
        args.window,
        args.warmup,
        backend_options={"use_uvloop": True},
    )
    json.dump({"windows": [asdict(w) for w in windows], "error_kinds": error_kinds}, sys.stdout)


if __name__ == "__main__":
    main()
