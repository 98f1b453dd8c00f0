"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset.

pgserver's own start is kept for existing data folders. A new one is made faster: copied
from a cached fresh cluster (see `template_dir`) or, the first time, made by initdb without
its per-file fsyncs; either way flushed with one syncfs before the server starts. The
server is started with `pg_ctl -w` while we poll its pid file ourselves, which sees it
ready sooner than pg_ctl's 100 ms polls. Started by root, it changes no folder's mode: see
embedded_root for where its files go then.
"""

from __future__ import annotations

# This module is imported by a thread that races the main thread's imports (see web/cli.py):
# only light modules at the top; every GIL hand-over with the importing thread costs ms.
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

# pgserver records the pid of every process holding a handle on the server, and stops the
# server when the last one exits. A process killed with SIGKILL never removes its pid, so
# the server would never stop again: drop the pids of processes that no longer exist.
_HANDLE_PIDS = ".handle_pids.json"

# pgserver's initdb options; the template cache is keyed by them too.
INITDB_ARGS = ("--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres")
START_TIMEOUT_S = 60.0  # pg_ctl's own default for -w
_POLL_S = 0.005


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Remove pids of dead processes from pgserver's handle list; returns those removed."""
    import psutil

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
        from pgserver.postgres_server import PostgresServer

    import logging

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # As pgserver's get_server, with our subclass.
    if _as_root():
        # PostgreSQL runs as pgserver's user: put it where that user reaches it already.
        from runner.store.embedded_root import place_cluster

        pgdata = place_cluster(pgdata)
    else:
        pgdata = pgdata.expanduser().resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    dead: list[int] = []
    if pgdata.exists():
        dead = forget_dead_handles(pgdata)
    else:
        pgdata.mkdir()
    server = PostgresServer._instances.get(pgdata)
    if server is None:
        server = _server_class()(pgdata, cleanup_mode=cleanup)
    import structlog  # late: the main thread is importing it meanwhile

    log = structlog.get_logger(__name__)
    if dead:
        log.info("embedded_db_stale_handles_removed", pids=dead)
    created = getattr(server, "created", None)
    if created is not None:
        log.info("embedded_db_created", source=created[0], ms=round(created[1] * 1000))
    return server, server.get_uri()


async def start_embedded(pgdata: Path) -> tuple[Any, str]:
    """Start (or join) the embedded server; returns its handle and a connection URL.

    pgserver blocks while it starts the server, so it runs in a worker thread.
    """
    import anyio

    return await anyio.to_thread.run_sync(start_embedded_sync, pgdata)


_SERVER_CLASS: type[Any] | None = None


def _server_class() -> type[Any]:
    """pgserver's PostgresServer with a faster path for a new folder and for starting.

    Defined on first use: pgserver is imported lazily.
    """
    global _SERVER_CLASS
    if _SERVER_CLASS is not None:
        return _SERVER_CLASS
    import pgserver._commands as commands
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import PostmasterInfo, find_suitable_socket_dir

    class FastPostgresServer(PostgresServer):
        # (source, seconds) when this process created the cluster, else None.
        created: tuple[str, float] | None = None

        def ensure_pgdata_inited(self) -> None:
            # Called under pgserver's interprocess lock, as is ensure_postgres_running.
            user = self.system_user
            if user is None and (sys.platform != "linux" or any(self.pgdata.iterdir())):
                super().ensure_pgdata_inited()  # as the current user it changes no modes
                return
            # As root pgserver's own would open up every parent of this folder and of its
            # binaries: embedded_root placed both where its user reaches them already.
            if user is not None:
                shutil.chown(self.pgdata, user, user)
                if (self.pgdata / "PG_VERSION").exists():
                    return
            began = time.perf_counter()
            _stop_orphan_servers(self.pgdata)
            source = create_cluster(self.pgdata, user)
            self.created = (source, time.perf_counter() - began)

        def ensure_postgres_running(self) -> None:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            if sys.platform != "linux" or (info is not None and info.is_running()):
                super().ensure_postgres_running()
                return
            # Not running: a pid file left by a crash would look ready to the poll below.
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
            if self.system_user is None:
                socket_dir = find_suitable_socket_dir(self.pgdata, self.runtime_path)
            else:  # pgserver's would open up the parents of a socket folder elsewhere
                from runner.store.embedded_root import socket_dir as root_socket_dir

                socket_dir = root_socket_dir(self.pgdata)
            pg_ctl = [
                str(commands.POSTGRES_BIN_PATH / "pg_ctl"),  # read now: see embedded_root
                *("-D", str(self.pgdata), "-w", "-t", str(int(START_TIMEOUT_S))),
                *("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.log), "start"),
            ]
            _start_and_wait(pg_ctl, self.pgdata, self.log, self.system_user)
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
            if info is None or not info.is_running() or info.status != "ready":
                raise RuntimeError(f"the embedded PostgreSQL is not ready after its start: {info}")
            self._postmaster_info = info

    _SERVER_CLASS = FastPostgresServer
    return _SERVER_CLASS


def _start_and_wait(pg_ctl: list[str], pgdata: Path, log: Path, user: str | None) -> None:
    """Run `pg_ctl -w start`; return once the pid file says ready (or pg_ctl succeeded).

    pg_ctl still reports a failed start (its exit status), but it checks only every 100 ms.
    """
    process = subprocess.Popen(
        pg_ctl,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=user,
    )
    deadline = time.monotonic() + START_TIMEOUT_S + 5
    while process.poll() is None:
        if _pid_file_ready(pgdata):
            # pg_ctl exits by itself within its next poll; reap it then.
            threading.Thread(target=process.wait, name="pg_ctl-reaper", daemon=True).start()
            return
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            break
        time.sleep(_POLL_S)
    if process.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else ""
        raise RuntimeError(f"the embedded PostgreSQL did not start; its log:\n{text[-4000:]}")


def _pid_file_ready(pgdata: Path) -> bool:
    """postmaster.pid says "ready" (its 8th line) for a live process."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return False
    if len(lines) < 8 or lines[7].strip() != "ready":
        return False
    try:
        os.kill(int(lines[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by pgserver's user
        pass
    return True


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _stop_orphan_servers(pgdata: Path) -> None:
    """As pgserver before initdb: stop a server still running on a deleted folder of the
    same path, which would otherwise fight the new cluster."""
    import psutil

    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in (proc.info["cmdline"] or []):
            proc.terminate()
            try:
                proc.wait(2)
            except psutil.TimeoutExpired:
                proc.kill()


# --- creating a cluster -------------------------------------------------------------------


def create_cluster(pgdata: Path, user: str | None) -> str:
    """Fill the empty folder `pgdata` with a new cluster, durably; returns "template" or
    "initdb" (which also stores a template for next time).

    The cluster is made in a sibling folder and renamed over `pgdata`, so an interrupted
    attempt never leaves a half-made cluster where PG_VERSION says it is whole.
    """
    for old in pgdata.parent.glob(f".{pgdata.name}.new-*"):
        shutil.rmtree(old, ignore_errors=True)  # interrupted attempts (we hold pgserver's lock)
    new = Path(tempfile.mkdtemp(prefix=f".{pgdata.name}.new-", dir=pgdata.parent))
    try:
        template = template_dir(user)
        if _copy_tree(template, new):
            source = "template"
        else:
            source = "initdb"
            _initdb(new, user)
            _publish_template(new, template)
        sync_filesystem(new)
        new.rename(pgdata)  # over the empty folder, in one step
        _fsync_dir(pgdata.parent)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return source


def _initdb(folder: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(folder, user, user)
    from pgserver._commands import POSTGRES_BIN_PATH

    # --no-sync: one syncfs afterwards costs ~20 ms; initdb's fsync of each file ~300 ms.
    args = [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(folder), *INITDB_ARGS]
    done = subprocess.run(
        [*args, "--no-sync", "--no-instructions"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        user=user,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _copy_tree(source: Path, target: Path) -> bool:
    """Copy the contents of `source` into the empty folder `target`, keeping modes and
    owners (`cp -a`: one process, off this thread's GIL); False if that failed."""
    if not (source / "PG_VERSION").is_file():
        return False
    done = subprocess.run(
        ["cp", "-a", f"{source}/.", f"{target}/"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if done.returncode == 0:
        return True
    for child in target.iterdir():  # start over with initdb in an empty folder
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return False


def _publish_template(cluster: Path, template: Path) -> None:
    """Store a copy of the fresh `cluster` as `template`, all or nothing: copied to a
    staging folder, flushed, then renamed. Best effort: a failure only costs the next
    start an initdb."""
    staging: Path | None = None
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=template.parent))
        if not _copy_tree(cluster, staging):
            return
        sync_filesystem(staging)
        try:
            staging.rename(template)
        except OSError:
            return  # another process published it first: theirs is as good
        _fsync_dir(template.parent)
    except OSError:
        return
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def template_dir(user: str | None) -> Path:
    """Where a fresh cluster made by this PostgreSQL build for this user, locale and time
    zone is cached (under the user cache folder, e.g. ~/.cache/weft/pg-templates).

    The key covers everything initdb's result depends on here: the binaries and share
    files (any other pgserver/PostgreSQL version changes their size or mtime), initdb's
    options, the owner, the locale and time zone settings it reads from the environment.
    """
    import platformdirs
    from pgserver._commands import POSTGRES_BIN_PATH

    install = POSTGRES_BIN_PATH.parent
    files = [POSTGRES_BIN_PATH / "postgres", POSTGRES_BIN_PATH / "initdb"]
    files += sorted(p for p in (install / "share" / "postgresql").iterdir() if p.is_file())
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    try:
        localtime = hashlib.sha256(Path("/etc/localtime").read_bytes()).hexdigest()
    except OSError:
        localtime = ""
    env = {k: v for k, v in os.environ.items() if k in ("LANG", "TZ") or k.startswith("LC_")}
    owner = (user, _uid(user))
    key = json.dumps([stats, INITDB_ARGS, owner, env, localtime, sys.platform])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return platformdirs.user_cache_path("weft") / "pg-templates" / digest


def _uid(user: str | None) -> int:
    if user is None:
        return os.geteuid()
    import pwd

    return pwd.getpwnam(user).pw_uid


def sync_filesystem(path: Path) -> None:
    """Flush the file system holding `path` (Linux syncfs: one call instead of an fsync of
    each file, and it reports write-back errors)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs: {os.strerror(errno)}", str(path))
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
