"""`weft serve` with several worker processes on one port (WEB_CONCURRENCY, --workers N).

The main process holds the port, starts the embedded database when DATABASE_URL is unset,
applies the migrations once, and starts N workers: each a full weft (its own Runtime)
listening on the port with SO_REUSEPORT (the kernel spreads new connections across them),
under its own instance name (leases).
They coordinate through PostgreSQL like any processes on one database. A worker that dies
is replaced; SIGTERM (or SIGINT) is passed on to every worker, which drains as one process
would, and the main process exits once all have stopped (killing any that outlive the
grace period).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import anyio
import structlog

from runner.settings import Settings
from runner.system import database_url_for, migrate
from web.serve import bind_socket

log = structlog.get_logger(__name__)

# A worker that dies sooner than this after its start is restarted after a pause (a worker
# that cannot start must not spin).
MIN_UPTIME_S = 5.0
RESTART_PAUSE_S = 1.0
POLL_S = 0.2
# On top of the drain and the HTTP grace, what a stopping worker gets before it is killed.
STOP_MARGIN_S = 5.0


class _Worker:
    def __init__(self, index: int, process: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.process = process
        self.started = time.monotonic()


def serve_workers(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run `workers` worker processes on host:port until SIGTERM/SIGINT; the exit code."""
    # Held (not listened on) so that the port stays this server's while workers come and go.
    sock = bind_socket(host, port, reuse_port=True, listen=False)
    port = sock.getsockname()[1]
    # The database is ready (embedded server started, migrations applied) before any worker
    # starts, and the embedded server lives as long as this process.
    url, _server = anyio.run(database_url_for, settings)
    anyio.run(migrate, settings.model_copy(update={"database_url": url}))
    instance = settings.instance_name(port)
    env = {**os.environ, "DATABASE_URL": url, "WEB_CONCURRENCY": "1"}
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            log.info("shutdown_requested", signal=signal.Signals(signum).name, workers=workers)
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start(index: int) -> _Worker:
        command = [sys.executable, "-m", "web.cli", "serve", "--reuse-port"]
        command += ["--host", host, "--port", str(port)]
        # Each worker holds leases in its own name: a restart takes back its own runs.
        worker_env = {**env, "WEFT_INSTANCE": f"{instance}.{index}"}
        process = subprocess.Popen(command, env=worker_env)
        log.info("worker_started", worker=index, pid=process.pid)
        return _Worker(index, process)

    running = [start(i) for i in range(workers)]
    log.info("listening", url=f"http://{host}:{port}", workers=workers)
    while not stopping:
        time.sleep(POLL_S)
        for n, worker in enumerate(running):
            code = worker.process.poll()
            if code is None or stopping:
                continue
            log.warning("worker_died", worker=worker.index, pid=worker.process.pid, code=code)
            if time.monotonic() - worker.started < MIN_UPTIME_S:
                time.sleep(RESTART_PAUSE_S)
            running[n] = start(worker.index)
    grace = settings.weft_shutdown_grace + settings.weft_http_grace_s + STOP_MARGIN_S
    return _stop_all(running, grace)


def _stop_all(running: list[_Worker], grace_s: float) -> int:
    for worker in running:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    code = 0
    for worker in running:
        try:
            worker_code = worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker_killed", worker=worker.index, pid=worker.process.pid)
            worker.process.kill()
            worker_code = worker.process.wait()
        if worker_code != 0:
            log.error("worker_failed", worker=worker.index, code=worker_code)
            code = 1
    log.info("stopped", workers=len(running))
    return code
