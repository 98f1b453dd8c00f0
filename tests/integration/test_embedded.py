"""The embedded PostgreSQL's start on a new data folder: initdb the first time, then a copy
of the cached template cluster; each cluster its own, and safe when starts race. As root,
a data folder its user cannot reach gets a cluster under /var/lib/weft (or the temp folder,
for one in it), and no folder's mode changes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.store.embedded import start_embedded_sync, template_dir
from runner.store.embedded_root import BASE, TEMP_BASE_NAME


@pytest.fixture
def folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder for data folders and an empty template cache (XDG_CACHE_HOME), which the
    server's user can enter (as root it runs as another user): the cluster is made in it.
    """
    path = Path(tempfile.mkdtemp(prefix="weft-test-embedded-"))
    path.chmod(0o755)  # this test's own folder; mkdtemp makes it 700
    monkeypatch.setenv("XDG_CACHE_HOME", str(path / "cache"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _query(server: Any, sql: str) -> str:
    return str(server.psql(sql))


def test_a_new_folder_comes_from_initdb_then_from_the_template(folder: Path) -> None:
    # Given no cached template
    template = template_dir(_system_user())
    assert not template.exists()

    # When a first and a second fresh data folder are started
    first, _ = start_embedded_sync(folder / "a" / "pgdata", cleanup="delete")
    second, _ = start_embedded_sync(folder / "b" / "pgdata", cleanup="delete")
    try:
        # Then the first ran initdb and stored the template, the second copied it
        assert first.created[0] == "initdb"
        assert second.created[0] == "template"
        assert (template / "PG_VERSION").is_file()
        # And the two clusters are independent, and the template is untouched
        _query(second, "CREATE TABLE only_in_second (x int);")
        assert "only_in_second" in _query(second, r"\dt")
        assert "only_in_second" not in _query(first, r"\dt")
        assert not (template / "postmaster.pid").exists()
        assert not (template / "log").exists()
    finally:
        first.cleanup()
        second.cleanup()


def test_an_interrupted_creation_is_cleaned_up(folder: Path) -> None:
    # Given a data folder left empty by a start killed while it made the cluster
    pgdata = folder / "pgdata"
    pgdata.mkdir()
    leftover = folder / ".pgdata.new-killed"
    (leftover / "base").mkdir(parents=True)

    # When weft starts on it
    server, _ = start_embedded_sync(pgdata, cleanup="delete")
    try:
        # Then the leftover is gone and the server answers
        assert not leftover.exists()
        assert "1" in _query(server, "SELECT 1;")
    finally:
        server.cleanup()


def test_an_unusable_template_falls_back_to_initdb(folder: Path) -> None:
    # Given a cache entry that is not a cluster
    template = template_dir(_system_user())
    template.mkdir(parents=True)
    (template / "junk").write_text("not a cluster")

    # When a fresh data folder is started
    server, _ = start_embedded_sync(folder / "pgdata", cleanup="delete")
    try:
        # Then initdb made it, and it works
        assert server.created[0] == "initdb"
        assert "1" in _query(server, "SELECT 1;")
    finally:
        server.cleanup()


_START_ONE = """
import json, sys
from pathlib import Path
from runner.store.embedded import start_embedded_sync
server, _ = start_embedded_sync(Path(sys.argv[1]), cleanup="delete")
print(json.dumps([server.created[0], server.psql("SELECT 41 + 1;")]))
"""


def test_racing_first_starts_each_get_a_working_cluster(folder: Path) -> None:
    # Given an empty cache and two processes that do not share pgserver's lock (their own
    # runtime folders), so nothing orders their first starts
    def launch(name: str) -> subprocess.Popen[str]:
        runtime = folder / f"run-{name}"
        runtime.mkdir(mode=0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
        return subprocess.Popen(
            [sys.executable, "-c", _START_ONE, str(folder / name / "pgdata")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # When they start at once
    processes = [launch("a"), launch("b")]
    results = [process.communicate(timeout=90) for process in processes]

    # Then both servers worked, and the cache holds one whole template
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        source, answer = json.loads(out.splitlines()[-1])
        assert source in ("initdb", "template")
        assert "42" in answer
    template = template_dir(_system_user())
    assert (template / "PG_VERSION").is_file()
    assert [p.name for p in template.parent.iterdir()] == [template.name]


def _system_user() -> str | None:
    """The user pgserver runs PostgreSQL as: its own when we are root."""
    return "pgserver" if os.geteuid() == 0 else None


def _modes(paths: list[Path]) -> dict[Path, str]:
    return {p: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths}


as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user as root")


@as_root
@pytest.mark.parametrize("in_temp", [False, True], ids=["var-lib", "temp"])
def test_as_root_a_folder_its_user_cannot_reach_gets_a_cluster_elsewhere(
    folder: Path, monkeypatch: pytest.MonkeyPatch, in_temp: bool
) -> None:
    # Given a data folder under a home of mode 700, like /root, in the temp folder or not
    if not in_temp:
        (folder / "tmp").mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(folder / "tmp"))
    home = folder / "home"
    home.mkdir(mode=0o700)
    link = home / "project" / ".weft" / "pgdata"
    before = _modes([home, *home.parents])

    # When the server starts on it, is stopped, and starts again
    first, _ = start_embedded_sync(link, cleanup="stop")
    try:
        _query(first, "CREATE TABLE kept (x int);")
    finally:
        first.cleanup()
    second, _ = start_embedded_sync(link, cleanup="delete")
    try:
        # Then the cluster lives under /var/lib/weft (the temp folder's weft-root for a
        # folder in it), the data folder links to it, the second start found it, and no
        # folder above the data folder changed its mode
        target = link.resolve()
        assert link.is_symlink()
        base = Path(tempfile.gettempdir()).resolve() / TEMP_BASE_NAME if in_temp else BASE
        assert target.parent == base / "clusters"
        assert second.pgdata == target
        assert "kept" in _query(second, r"\dt")
        assert _modes([home, *home.parents]) == before
        assert oct(stat.S_IMODE(home.stat().st_mode)) == "0o700"
    finally:
        second.cleanup()
    # And its cleanup removed the cluster itself
    assert not target.exists()


@as_root
def test_as_root_an_existing_cluster_its_user_cannot_reach_is_refused(folder: Path) -> None:
    # Given a cluster (its PG_VERSION, enough here) under a home of mode 700
    home = folder / "home"
    home.mkdir(mode=0o700)
    pgdata = home / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")

    # When the server is started on it, then it is refused, saying why, and nothing moved
    with pytest.raises(PermissionError, match=rf"cannot reach {pgdata} \({home} is mode 700\)"):
        start_embedded_sync(pgdata, cleanup="delete")
    assert oct(stat.S_IMODE(home.stat().st_mode)) == "0o700"
    assert (pgdata / "PG_VERSION").read_text() == "16\n"


@as_root
def test_as_root_a_socket_path_too_long_goes_to_a_folder_of_wefts(folder: Path) -> None:
    # Given a data folder its user can reach, too deep for a unix socket in it
    deep = folder / ("d" * 100)
    deep.mkdir()
    before = _modes([deep, *deep.parents])

    # When the server starts there
    server, url = start_embedded_sync(deep / "pgdata", cleanup="delete")
    socket_dir = Path(url.split("host=")[1])
    try:
        # Then the cluster is in place, its socket in /var/lib/weft/run, and nothing opened up
        assert server.pgdata == deep / "pgdata"
        assert socket_dir.parent == BASE / "run"
        assert "1" in _query(server, "SELECT 1;")
        assert _modes([deep, *deep.parents]) == before
    finally:
        server.cleanup()
        shutil.rmtree(socket_dir, ignore_errors=True)
