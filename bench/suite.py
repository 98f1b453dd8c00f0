"""The `weft bench` command: options, the order of the scenarios, and the report."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil

from bench import floor, scale, scenarios
from bench.options import DEFAULT_REPETITIONS, NAMES, QUICK_REPETITIONS, selected
from bench.report import Figure, render_header, render_table, write_json
from bench.server import ServerProcess, new_data_dir, remove_data_dir

ServerScenario = Callable[[scenarios.Bench], Awaitable[list[Figure]]]

# The scenarios that share one server, in the order they run and are reported.
SERVER_SCENARIOS: dict[str, ServerScenario] = {
    "chain100": scenarios.chain100,
    "fanout100": scenarios.fanout100,
    "sleepy-fanout": scenarios.sleepy_fanout,
    "skewed-branches": scenarios.skewed_branches,
    "runs-per-s": scenarios.runs_per_second,
    "webhook": scenarios.webhook,
    "websocket": scenarios.websocket_latency,
}
# The scenarios that start servers of their own.
OWN_SERVER_SCENARIOS = {
    "memory": scenarios.memory,
    "scale": scale.scale,
    "cross-process": scale.cross_process,
}
assert set(NAMES) == {*SERVER_SCENARIOS, *OWN_SERVER_SCENARIOS, "floor"}, "NAMES is out of date"

# Which floor figure each weft figure is compared with, and the factor that converts it.
FLOOR_OF: dict[tuple[str, str], tuple[str, float]] = {
    ("chain100", "total_ms"): ("chain100_ms", 1.0),
    ("chain100", "run_ms"): ("chain100_ms", 1.0),
    ("chain100", "per_node_us"): ("chain100_ms", 1000 / 100),
    ("fanout100", "total_ms"): ("fanout100_ms", 1.0),
    ("fanout100", "run_ms"): ("fanout100_ms", 1.0),
    ("fanout100", "per_node_us"): ("fanout100_ms", 1000 / 100),
    ("sleepy-fanout", "total_ms"): ("sleepy_fanout_ms", 1.0),
    ("sleepy-fanout", "run_ms"): ("sleepy_fanout_ms", 1.0),
    ("skewed-branches", "total_ms"): ("skewed_branches_ms", 1.0),
    ("skewed-branches", "run_ms"): ("skewed_branches_ms", 1.0),
    ("runs-per-s", "runs_per_s"): ("runs_per_s", 1.0),
    ("runs-per-s", "batch_runs_per_s"): ("runs_per_s", 1.0),
}


def progress(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def command_line() -> str:
    program = Path(sys.argv[0]).name
    if program == "__main__.py":
        program = "python -m bench"
    elif program == "cli.py":
        program = "python -m web.cli"
    return shlex.join([program, *sys.argv[1:]])


def postgresql_version() -> str:
    """The embedded PostgreSQL's version (its `postgres --version`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns about XDG_RUNTIME_DIR at import
        from pgserver._commands import POSTGRES_BIN_PATH

    output = subprocess.run(
        [str(Path(POSTGRES_BIN_PATH) / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return output.strip().removeprefix("postgres (PostgreSQL) ") or "unknown"


def metadata_of_run(repetitions: int) -> dict[str, Any]:
    return {
        "command": command_line(),
        "weft_version": metadata.version("weft"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": f"{postgresql_version()} (embedded, pgserver)",
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "repetitions": repetitions,
    }


def attach_floor(figures: list[Figure], result: floor.FloorResult) -> list[Figure]:
    """Give the weft figures their floor; floor figures without a weft figure get rows."""
    used: set[str] = set()
    for figure in figures:
        source = FLOOR_OF.get((figure.scenario, figure.key))
        if source is not None:
            name, factor = source
            figure.floor_samples = [v * factor for v in getattr(result, name)]
            used.add(name)
    rows = {
        "chain100_ms": ("chain100", "ms"),
        "fanout100_ms": ("fanout100", "ms"),
        "sleepy_fanout_ms": ("sleepy-fanout", "ms"),
        "skewed_branches_ms": ("skewed-branches", "ms"),
        "runs_per_s": (f"{scenarios.CONCURRENT_RUNS} 3-node runs at once", "runs/s"),
    }
    extra = [
        Figure("floor", name, label, unit, [], floor_samples=list(getattr(result, name)))
        for name, (label, unit) in rows.items()
        if name not in used
    ]
    return figures + extra


async def run_scenarios(names: list[str], repetitions: int) -> list[Figure]:
    figures: list[Figure] = []
    floor_result: floor.FloorResult | None = None
    on_server = [n for n in names if n in SERVER_SCENARIOS]
    if on_server or "floor" in names:
        data_dir = new_data_dir()
        server = ServerProcess(data_dir)
        try:
            progress(f"starting weft serve on {server.url} (data in {data_dir})")
            await anyio.to_thread.run_sync(server.start)
            if "floor" in names:
                floor_result = await floor.measure_floor(
                    server.database_url, repetitions, scenarios.CONCURRENT_RUNS, progress
                )
            floor_dsn = server.database_url(floor.FLOOR_DATABASE) if "floor" in names else None
            async with httpx.AsyncClient(base_url=server.url, timeout=90) as client:
                bench = scenarios.Bench(server, client, repetitions, progress, floor_dsn)
                for name in on_server:
                    progress(f"{name} …")
                    figures += await SERVER_SCENARIOS[name](bench)
        except Exception:
            progress(f"weft server log (tail):\n{server.log_tail()}")
            raise
        finally:
            await anyio.to_thread.run_sync(server.stop)
            remove_data_dir(data_dir)
    for name, scenario in OWN_SERVER_SCENARIOS.items():
        if name in names:
            progress(f"{name} (servers of its own) …")
            figures += await scenario(repetitions, progress)
    if floor_result is not None:
        figures = attach_floor(figures, floor_result)
    return figures


def stolen_share(before: Any, after: Any) -> float:
    """The share (%) of CPU time the hypervisor took between two psutil.cpu_times()."""
    total = sum(after) - sum(before)
    stolen = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return 100 * stolen / total if total > 0 else 0.0


def run(args: argparse.Namespace) -> int:
    """Run the suite; print the header and the table; write JSON when asked."""
    names = selected(args.only)
    repetitions = QUICK_REPETITIONS if args.quick else DEFAULT_REPETITIONS
    meta = metadata_of_run(repetitions)
    meta["load_average"] = round(os.getloadavg()[0], 2)
    cpu_before = psutil.cpu_times()
    started = time.perf_counter()
    progress(f"weft bench: {', '.join(names)}; {repetitions} repetitions each")
    try:
        figures = anyio.run(run_scenarios, names, repetitions)
    except RuntimeError as exc:  # weft did not start, answered unexpectedly, a run failed
        print(f"weft bench: {exc}", file=sys.stderr)
        return 1
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    meta["cpu_steal_percent"] = round(stolen_share(cpu_before, psutil.cpu_times()), 1)
    print(render_header(meta))
    print()
    print(render_table(figures))
    print()
    print(f"suite took {meta['elapsed_s']:.0f} s")
    if args.json is not None:
        write_json(args.json, meta, figures)
    return 0
