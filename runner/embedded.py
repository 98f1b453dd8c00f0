"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import anyio
import psutil
import structlog

log = structlog.get_logger(__name__)

# pgserver records the pid of every process holding a handle on the server, and stops the
# server when the last one exits. A process killed with SIGKILL never removes its pid, so
# the server would never stop again: drop the pids of processes that no longer exist.
_HANDLE_PIDS = ".handle_pids.json"


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of dead processes from pgserver's handle list; returns those removed."""
    path = pgdata / _HANDLE_PIDS
    try:
        pids = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    if not isinstance(pids, list):
        return []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    dead = [pid for pid in pids if pid not in alive]
    if dead:
        path.write_text(json.dumps(alive))
    return dead


# pgserver's lock is a file lock, which does not exclude threads of one process from each
# other: this one does (`weft up` starts the server in a thread while it imports).
_START_LOCK = threading.Lock()


def start_embedded_sync(pgdata: Path, *, cleanup: str = "stop") -> tuple[Any, str]:
    """Start (or join) the embedded server, blocking; returns its handle and URL.

    `cleanup` is pgserver's: "stop" stops the server when the last process using it exits,
    "delete" also removes the data folder (tests).
    """
    with _START_LOCK:
        return _start(pgdata, cleanup)


def _start(pgdata: Path, cleanup: str) -> tuple[Any, str]:
    # Imported here: pgserver warns at import time about XDG_RUNTIME_DIR, harmlessly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        dead = forget_dead_handles(pgdata)
        if dead:
            log.info("embedded_db_stale_handles_removed", pids=dead)
    server = get_server(pgdata, cleanup_mode=cleanup)
    return server, server.get_uri()


async def start_embedded(pgdata: Path) -> tuple[Any, str]:
    """Start (or join) the embedded server; returns its handle and a connection URL.

    pgserver blocks while it starts the server, so it runs in a worker thread.
    """
    return await anyio.to_thread.run_sync(start_embedded_sync, pgdata)
