"""The `weft` command as a user runs it: `weft up` on embedded defaults, `weft serve` and
`weft migrate` on DATABASE_URL, each a real process stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from runner.store.migrate import discover

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def weft_process(
    args: list[str], env: dict[str, str], cwd: Path
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_ready(url: str, process: subprocess.Popen[str], marker: str) -> str:
    """Read weft's output up to the line that says it serves (`marker`); then it answers."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            return "".join(lines)
    raise AssertionError("weft exited early:\n" + "".join(lines))


def run_a_workflow(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        created = client.post(
            "/workflows",
            json={"name": "cli", "graph": {"nodes": [{"id": "s", "type": "start"}], "edges": []}},
        )
        assert created.status_code == 201, created.text
        run = client.post(
            f"/workflows/{created.json()['id']}/run", params={"wait": 20}, json={"start_input": 5}
        )
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "succeeded"
        assert run.json()["outputs"] == {"s": {"data": 5}}


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def test_weft_up_on_embedded_defaults(tmp_path: Path) -> None:
    # Given a fresh folder and no DATABASE_URL
    port = free_port()
    env = {"PORT": str(port), "DATABASE_URL": "", "WEFT_DATA_DIR": str(tmp_path / ".weft")}
    with weft_process(["up"], env, tmp_path) as process:
        url = f"http://127.0.0.1:{port}"
        output = wait_ready(url, process, "weft is running at")
        run_a_workflow(url)
        output += stop(process)
    # Then it said where it listens, kept its database under WEFT_DATA_DIR, and stopped it
    assert f"weft is running at {url}" in output
    pgdata = tmp_path / ".weft" / "pgdata"
    assert (pgdata / "PG_VERSION").exists()
    assert not any(
        str(pgdata) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "postgres" in p.info["cmdline"][0]
    )


def test_weft_migrate_and_serve_on_database_url(tmp_path: Path, pg_server: object) -> None:
    import anyio
    import asyncpg

    async def create() -> str:
        admin = await asyncpg.connect(pg_server.get_uri("postgres"))  # type: ignore[attr-defined]
        await admin.execute("DROP DATABASE IF EXISTS weft_cli WITH (FORCE)")
        await admin.execute("CREATE DATABASE weft_cli")
        await admin.close()
        url: str = pg_server.get_uri("weft_cli")  # type: ignore[attr-defined]
        return url.replace("postgresql://", "postgres://")  # as Heroku gives it

    database_url = anyio.run(create)
    env = {"DATABASE_URL": database_url, "WEFT_DATA_DIR": str(tmp_path / "data")}
    migrate = subprocess.run(
        [sys.executable, "-m", "web.cli", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    versions = [m.version for m in discover()]
    assert f"{len(versions)} migration(s) applied: {', '.join(versions)}" in migrate.stdout

    port = free_port()
    with weft_process(
        ["serve"], {**env, "PORT": str(port), "WEFT_HOST": "127.0.0.1"}, tmp_path
    ) as process:
        url = f"http://127.0.0.1:{port}"
        output = wait_ready(url, process, '"event": "listening"')
        run_a_workflow(url)
        output += stop(process)
    assert '"event": "listening"' in output
    assert not (tmp_path / "data" / "pgdata").exists()


# Settings are checked before any connection: a database that is never reached.
NO_DATABASE = "postgres://nobody@127.0.0.1:1/none"


def weft_refusing(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`weft <command>` with `env` over this environment (a value of "" unsets it), for a
    start that must stop before serving."""
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", command],
        env={k: v for k, v in environment.items() if v},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = weft_refusing("serve", DATABASE_URL="mysql://nope")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "postgres://" in result.stderr


def test_a_secret_key_that_is_not_a_fernet_key_stops_the_start_in_one_line() -> None:
    result = weft_refusing("serve", DATABASE_URL=NO_DATABASE, WEFT_SECRET_KEY="not-a-key")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "weft: bad setting WEFT_SECRET_KEY: not a Fernet key (32 bytes in url-safe base64; "
        "`weft up` makes one under WEFT_DATA_DIR)"
    )


@pytest.mark.parametrize("damaged", [b"damaged", b"\xff\xfe not text"], ids=["text", "bytes"])
def test_a_kept_secret_key_that_is_damaged_stops_weft_up_in_one_line(
    tmp_path: Path, damaged: bytes
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_bytes(damaged)
    result = weft_refusing(
        "up", DATABASE_URL=NO_DATABASE, WEFT_DATA_DIR=str(data), WEFT_SECRET_KEY=""
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"weft: {data / 'secret.key'} is not a Fernet key (restore it, or remove it to make a "
        "new one: the secrets stored with the old one can then not be read)"
    )
    assert (data / "secret.key").read_bytes() == damaged


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
