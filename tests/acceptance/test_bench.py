"""`weft bench` as a user runs it: a quick, partial suite against a real weft server on the
embedded PostgreSQL. A behaviour test: figures come out as numbers, not how fast they are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.scenarios import http_floor

BENCH_TIMEOUT_S = 60


def weft_command() -> list[str]:
    """The `weft` console script beside this Python, or the same entry point through -m."""
    script = Path(sys.executable).with_name("weft")
    return [str(script)] if script.exists() else [sys.executable, "-m", "web.cli"]


def test_weft_bench_quick_writes_the_table_and_json(tmp_path: Path) -> None:
    # Given no DATABASE_URL (the bench's server uses the embedded PostgreSQL)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    out = tmp_path / "bench.json"
    # When a quick run of two scenarios is asked for, with JSON
    result = subprocess.run(
        [*weft_command(), "bench", "--quick", "--only", "chain100,sleepy-fanout", "--json", out],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )
    # Then it succeeds and prints the table under its header
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert header.split() == ["scenario", "figure", "weft", "floor", "weft/floor", "target"]
    assert any(line.startswith("command ") and "bench --quick" in line for line in lines)
    # And the JSON holds those scenarios' figures as positive numbers, two samples each
    document = json.loads(out.read_text())
    assert document["repetitions"] == 2
    figures = {(f["scenario"], f["figure"]): f for f in document["figures"]}
    assert {s for s, _ in figures} == {"chain100", "sleepy-fanout"}
    for key in [
        ("chain100", "total_ms"),
        ("chain100", "run_ms"),
        ("chain100", "per_node_us"),
        ("sleepy-fanout", "total_ms"),
        ("sleepy-fanout", "run_ms"),
    ]:
        figure = figures[key]
        assert isinstance(figure["value"], float)
        assert figure["value"] > 0, figure
        assert len(figure["samples"]) == 2
        assert all(sample > 0 for sample in figure["samples"]), figure
    # And the figures with a target say whether it was met
    assert isinstance(figures[("chain100", "per_node_us")]["met"], bool)
    assert isinstance(figures[("sleepy-fanout", "total_ms")]["met"], bool)


@pytest.mark.anyio
async def test_the_webhook_floor_server_runs_the_floor_work_per_request(
    database_url: str,
) -> None:
    async with http_floor(database_url, transforms=2) as url, httpx.AsyncClient() as client:
        answers = [await client.post(url, content=b"{}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT run_id, node_id, status FROM floor_node_runs")
    finally:
        await conn.close()
    # One INSERT and one UPDATE per node: start → t1 → t2, three runs
    assert len(rows) == 9
    assert {r["status"] for r in rows} == {"succeeded"}
    assert len({r["run_id"] for r in rows}) == 3


def test_weft_bench_without_the_suite_says_what_to_install(tmp_path: Path) -> None:
    # Given weft's packages as a wheel installs them: without bench/ beside them
    root = Path(__file__).resolve().parents[2]
    for part in ("runner", "web", "blocks", "sql"):
        shutil.copytree(root / part, tmp_path / part)
    # When `weft bench` is asked for there
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "bench", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )
    # Then it says in one line what to install, and fails
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "pip install -e '.[dev]'" in result.stderr
