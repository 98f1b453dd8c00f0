"""Your own blocks without forking weft: the README's plugin, from file to palette to run on
a real `weft up` process; plugins that cannot load stop the start with one line; installed
packages' `weft.blocks` entry points."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from blocks import standard_registry
from blocks.plugins import PluginError, load_plugins
from tests.acceptance.test_cli import free_port
from tests.acceptance.test_workers import wait_healthy
from tests.readme import Session, section

START_TIMEOUT_S = 60


def readme_plugin() -> tuple[str, str]:
    """The README's plugin file and the command that starts weft with it."""
    text = section("Your own blocks")
    source = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    start = re.search(r"```\n(WEFT_BLOCKS=.*?)\n```", text)
    assert source is not None
    assert start is not None
    return source.group(1), start.group(1)


@contextmanager
def started(command: str, cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "PORT": str(port),
        "WEFT_HOST": "127.0.0.1",
        "WEFT_DATA_DIR": str(cwd / "data"),
        "WEFT_SHUTDOWN_GRACE": "1",
    }
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_the_readme_plugin_from_file_to_palette_to_run(tmp_path: Path) -> None:
    source, command = readme_plugin()
    (tmp_path / "my_blocks.py").write_text(source)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with started(command, tmp_path, port):
        wait_healthy(url, START_TIMEOUT_S)
        session = Session(url)
        answers = session.run_all(section("Your own blocks"))
        palette = answers[0]
        assert '"type":"shout"' in palette
        assert '"type":"slow.hash"' in palette
        run = answers[-1]
        assert run["status"] == "succeeded", run
        assert run["outputs"]["shout"] == {"text": "HEY!"}
        assert len(run["outputs"]["hash"]["hex"]) == 64
        logs = httpx.get(f"{url}/runs/{run['id']}/logs").json()["items"]
        messages = {(line["node_id"], line["message"]) for line in logs}
        assert ("shout", "shouting") in messages
        assert ("hash", "hashing") in messages  # logged from the worker thread


@pytest.mark.parametrize(
    ("plugin", "line"),
    [
        ("nope", "weft: WEFT_BLOCKS module 'nope' cannot be imported: ModuleNotFoundError: "
         "No module named 'nope'"),
        ("broken", "weft: WEFT_BLOCKS module 'broken' cannot be imported: ZeroDivisionError: "
         "division by zero"),
        ("empty", "weft: WEFT_BLOCKS module 'empty' declares no block (decorate its functions "
         "with @block)"),
        ("dup", "weft: WEFT_BLOCKS module 'dup': block type 'start' is already registered"),
    ],
)  # fmt: skip
def test_a_plugin_that_cannot_load_stops_the_start_with_one_line(
    tmp_path: Path, plugin: str, line: str
) -> None:
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    (tmp_path / "empty.py").write_text("VALUE = 1\n")
    (tmp_path / "dup.py").write_text(
        "from blocks import block\nfrom pydantic import BaseModel\n\n"
        "@block('start', BaseModel)\nasync def start(input, ctx):\n    return {}\n"
    )
    env = {**os.environ, "WEFT_BLOCKS": plugin, "WEFT_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == line


def test_installed_packages_entry_points_add_their_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "weft_demo_blocks.py").write_text(
        "from blocks import block\nfrom pydantic import BaseModel\n\n"
        "@block('demo.echo', BaseModel)\nasync def echo(input, ctx):\n    return {'ok': True}\n"
    )
    info = tmp_path / "weft_demo_blocks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weft-demo-blocks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[weft.blocks]\ndemo = weft_demo_blocks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = standard_registry()
    assert load_plugins(registry, []) == ["demo.echo"]
    assert "demo.echo" in registry
    # Loaded twice (a second registry is fresh): the same blocks, no duplicate error
    assert load_plugins(standard_registry(), []) == ["demo.echo"]
    with pytest.raises(PluginError, match=r"entry point 'demo'.*already registered"):
        load_plugins(registry, [])
