"""The embedded PostgreSQL started by root, without loosening the host.

PostgreSQL refuses to run as root, so pgserver runs it as its own user (`pgserver`) and, to
let that user in, adds g+rx,o+rx to every parent folder of the data folder and of its own
binaries: `/root` went from 700 to 755. weft never changes the mode of a folder it did not
create. As root, instead:

- the cluster stays in WEFT_DATA_DIR/pgdata when that user can already reach it; otherwise
  a new cluster is made in /var/lib/weft/clusters/<name>-<random> and WEFT_DATA_DIR/pgdata
  becomes a symlink to it. A WEFT_DATA_DIR in the temp folder (tests, CI, benchmarks) gets
  its cluster in <temp>/weft-root/clusters instead: it lives no longer than the folder it
  belongs to would. An existing cluster that user cannot reach is refused;
- pgserver's binaries are run where they are when that user can run them there; otherwise
  from a copy in /var/lib/weft/postgresql/<key> (Python installed under /root: pyenv, pip
  --user, conda);
- the socket is in the data folder, or in /var/lib/weft/run/<hash> when that path is too
  long for a unix socket.

/var/lib/weft: a service's state belongs there (FHS); its parents are root's and
world-traversable on any such system; unlike the temp folder it is neither wiped at boot nor
aged out by systemd-tmpfiles. weft creates these folders root-owned, mode 755, and refuses
one that anyone but root can write to. Removing WEFT_DATA_DIR leaves a cluster it links to
behind. When none of this works, a PermissionError says in one line what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

BASE = Path("/var/lib/weft")
TEMP_BASE_NAME = "weft-root"  # in the temp folder
USER = "pgserver"  # the user pgserver runs PostgreSQL as when root starts it
_SOCKET_NAME = ".s.PGSQL.5432"
_SOCKET_MAX = 107  # sun_path is 108 bytes, its NUL included
_WHAT_TO_DO = (
    "set WEFT_DATA_DIR to a folder it can reach, run weft as another user, or set DATABASE_URL"
)


def place_cluster(requested: Path) -> Path:
    """The folder where the cluster of `requested` (WEFT_DATA_DIR/pgdata) lives, which
    pgserver's user can reach; may not exist yet."""
    if sys.platform != "linux":
        raise PermissionError(
            "as root, weft runs the embedded PostgreSQL only on Linux: "
            "run weft as another user, or set DATABASE_URL"
        )
    from pgserver.utils import ensure_user_exists

    ensure_user_exists(USER)
    use_reachable_binaries()
    link = requested.expanduser().absolute()
    link.parent.mkdir(parents=True, exist_ok=True)
    link = link.parent.resolve() / link.name
    if link.is_symlink():  # placed elsewhere by an earlier start (or by hand)
        target = link.resolve()
        if target.parent.is_dir():
            if not can_enter(target.parent):
                raise PermissionError(_refusal(target))
            return target
        link.unlink()  # what it pointed into is gone: a new cluster, as for a removed folder
    if can_enter(link.parent):
        return link
    if link.exists() and not (link.is_dir() and not any(link.iterdir())):
        raise PermissionError(
            _refusal(link, "move it to a folder that user can reach and set WEFT_DATA_DIR there")
        )
    return _relocate(link)


def _relocate(link: Path) -> Path:
    """A new, empty folder in `cluster_home(link)`, with `link` a symlink to it."""
    clusters = _weft_dir(cluster_home(link))
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(link.parts[1:]))[-40:].lstrip(".-")
    target = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=clusters))
    if link.is_dir():
        link.rmdir()  # empty (checked): where the cluster would have gone
    try:
        os.symlink(target, link)
    except FileExistsError:  # another start placed it first: use theirs
        target.rmdir()
        return link.resolve()
    return target


def cluster_home(link: Path) -> Path:
    """Where a cluster for `link` is made when its user cannot reach `link`."""
    temp = Path(tempfile.gettempdir()).resolve()
    in_temp = link.is_relative_to(temp) and can_enter(temp)  # TMPDIR may be private too
    return (temp / TEMP_BASE_NAME if in_temp else BASE) / "clusters"


def socket_dir(pgdata: Path) -> Path:
    """The server's socket folder: the data folder, or when that path is too long for a
    unix socket a folder of weft's that pgserver's user owns."""
    if len(os.fsencode(pgdata / _SOCKET_NAME)) <= _SOCKET_MAX:
        return pgdata
    folder = _weft_dir(BASE / "run") / hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]
    folder.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(folder, USER, USER)
    return folder


_RUNNABLE: set[Path] = set()


def use_reachable_binaries() -> None:
    """Point pgserver at binaries its user can run: its own, else weft's copy of them.

    pgserver reads `_commands.POSTGRES_BIN_PATH` at each call, so its own calls (its stop
    at exit) run the copy too, as weft's do.
    """
    import pgserver._commands as commands

    bin_dir: Path = commands.POSTGRES_BIN_PATH
    if bin_dir in _RUNNABLE:
        return
    if not _can_run(bin_dir):
        bin_dir = _copy_binaries(bin_dir)
        commands.POSTGRES_BIN_PATH = bin_dir
    _RUNNABLE.add(bin_dir)


def _copy_binaries(bin_dir: Path) -> Path:
    """A copy of pgserver's PostgreSQL under BASE/postgresql, keyed by its binaries; returns
    its bin folder. The layout is kept: the binaries find pgserver.libs (auditwheel's
    bundled libraries) by a relative RPATH."""
    install = bin_dir.parent  # …/pgserver/pginstall
    libs = install.parent.parent / "pgserver.libs"
    files = sorted(p for p in bin_dir.iterdir() if p.is_file())
    key = json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    home = _weft_dir(BASE / "postgresql") / hashlib.sha256(key.encode()).hexdigest()[:16]
    copied = home / "pgserver" / "pginstall" / "bin"
    if not copied.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=home.parent))
        try:
            (staging / "pgserver").mkdir()
            _run(["cp", "-a", str(install), str(staging / "pgserver" / "pginstall")])
            if libs.is_dir():
                _run(["cp", "-a", str(libs), str(staging / "pgserver.libs")])
            _run(["chmod", "-R", "a+rX,go-w", str(staging)])  # our copy: readable, root's
            staging.rename(home)
        except (OSError, subprocess.CalledProcessError):
            pass  # another start published it first, or the copy failed: checked below
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not _can_run(copied):
        todo = "install weft where that user can reach it (e.g. a virtualenv under /opt), "
        raise PermissionError(
            _refusal(
                bin_dir,
                todo + "run weft as another user, or set DATABASE_URL",
                cannot="run PostgreSQL from",
                also=f" nor from a copy in {home}",
            )
        )
    return copied


def _run(command: list[str]) -> None:
    subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=True)


def _weft_dir(path: Path) -> Path:
    """`path` and its parent (a base): made by weft, root's and mode 755, if missing; an
    existing one must be a folder only root can write to. pgserver's user must reach it."""
    for folder in (path.parent, path):
        try:
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)  # ours: the umask may have narrowed it
        except FileExistsError:
            pass
        except OSError as exc:
            raise PermissionError(
                f"as root, the embedded PostgreSQL needs a folder of weft's, {folder}, "
                f"which weft cannot create ({exc.strerror}): {_WHAT_TO_DO}"
            ) from None
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise PermissionError(
                f"{folder} must be a folder owned by root that only root can write to "
                f"(the embedded PostgreSQL's files are kept there when weft runs as root)"
            )
    if not can_enter(path):
        raise PermissionError(_refusal(path))
    return path


def can_enter(folder: Path) -> bool:
    """pgserver's user can reach `folder`: asked of the system as that user (ACLs count)."""
    return _as_user('cd -- "$1"', str(folder))


def _can_run(bin_dir: Path) -> bool:
    """pgserver's user can run the binaries in `bin_dir` and read their share folder."""
    bki = bin_dir.parent / "share" / "postgresql" / "postgres.bki"
    script = 'for p in postgres initdb pg_ctl; do "$1/$p" --version || exit 1; done; test -r "$2"'
    return _as_user(script, str(bin_dir), str(bki))


def _as_user(script: str, *args: str) -> bool:
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", script, "sh", *args],
            user=USER,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0


def _refusal(path: Path, todo: str = _WHAT_TO_DO, *, cannot: str = "reach", also: str = "") -> str:
    """One line: what pgserver's user cannot do, the folder in the way, what to do."""
    closed = next((p for p in reversed(path.parents) if _closed(p)), None)
    why = f" ({closed} is mode {stat.S_IMODE(closed.stat().st_mode):o})" if closed else ""
    return (
        f"as root, the embedded PostgreSQL runs as user {USER}, who cannot {cannot} "
        f"{path}{why}{also}, and weft does not change the permissions of folders it did not "
        f"create: {todo}"
    )


def _closed(folder: Path) -> bool:
    try:
        return not folder.stat().st_mode & stat.S_IXOTH
    except OSError:
        return False
