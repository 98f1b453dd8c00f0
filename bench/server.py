"""A real `weft serve` subprocess on a free 127.0.0.1 port with its own data directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
import psutil

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_data_dir() -> Path:
    """A fresh temporary WEFT_DATA_DIR, which the embedded DB's own user (as root) can reach,
    so its cluster stays inside it and goes with it."""
    path = Path(tempfile.mkdtemp(prefix="weft-bench-"))
    path.chmod(0o755)
    return path


def remove_data_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment of a benchmarked server: embedded DB, quiet logs, default settings."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        WEFT_DATA_DIR=str(data_dir),
        PORT=str(port),
        WEFT_LOG_LEVEL="warning",
        WEFT_LOG_FORMAT="json",
        # Only how long a stop may take; nothing is in flight when the bench stops a server.
        WEFT_SHUTDOWN_GRACE="5",
        WEFT_HTTP_GRACE_S="1",
    )
    return env


class ServerProcess:
    """`weft serve` on 127.0.0.1:<free port>; `start()` returns the seconds until /healthz
    first answered 200 (counted from the launch of the process)."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir / "bench-server.log"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not started"
        return self._process.pid

    def start(self) -> float:
        """Launch the server and wait until it is healthy; returns the time that took (s)."""
        log = self._log_path.open("ab")
        launched = time.perf_counter()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1"],
            env={**server_env(self.data_dir, self.port), **self.extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - launched < START_TIMEOUT_S:
                if self._process.poll() is not None:
                    raise RuntimeError(f"weft serve exited early:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return time.perf_counter() - launched
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"weft serve was not healthy within {START_TIMEOUT_S} s")

    def rss_bytes(self) -> int:
        """Resident set size of the weft process (not its PostgreSQL)."""
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        """SIGTERM and wait (the embedded PostgreSQL stops with its last user)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def database_url(self, database: str) -> str:
        """A URL of the server's embedded PostgreSQL (read from its postmaster.pid)."""
        return embedded_database_url(self.data_dir / "pgdata", database)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def embedded_database_url(pgdata: Path, database: str) -> str:
    """postgresql:// URL of the running server of `pgdata`, as pgserver builds it: the
    postmaster.pid lines are pid, data dir, start time, port, socket dir, host, shm, status."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir, host = lines[3].strip(), lines[4].strip(), lines[5].strip()
    if socket_dir:
        return f"postgresql://postgres:@/{database}?host={socket_dir}&port={port}"
    return f"postgresql://postgres:@{host or '127.0.0.1'}:{port}/{database}"
