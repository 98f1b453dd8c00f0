"""The embedded database does not loosen the host: `weft up` and `weft serve`, started in a
project under a private home (mode 700, like /root), change the mode of no folder above
their data or pgserver's binaries. Run as root (containers, CI), PostgreSQL runs as another
user: the cluster then lives in a folder of weft's (here, the temp folder's weft-root: the
projects are in the temp folder), linked from WEFT_DATA_DIR/pgdata."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runner.store.embedded_root import BASE, cluster_home
from tests.acceptance.test_cli import free_port, run_a_workflow, stop, wait_ready

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user as root")
READY = {"up": "weft is running at", "serve": '"event": "listening"'}


@pytest.fixture
def home() -> Iterator[Path]:
    """A private home folder (mode 700, like /root) with a project folder in it."""
    path = Path(tempfile.mkdtemp(prefix="weft-test-home-"))
    (path / "project").mkdir()
    yield path
    link = path / "project" / ".weft" / "pgdata"
    if link.is_symlink() and link.resolve().parent == cluster_home(link):
        shutil.rmtree(link.resolve(), ignore_errors=True)  # the cluster it made for this test
    shutil.rmtree(path, ignore_errors=True)


def modes(paths: list[Path]) -> dict[Path, str]:
    return {p: oct(stat.S_IMODE(p.stat().st_mode)) for p in paths if p.exists()}


def watched(project: Path) -> list[Path]:
    """Every folder above the project's data folder and above pgserver's binaries."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return [project, *project.parents, *POSTGRES_BIN_PATH.parents, BASE.parent]


def start_weft(
    command: str, project: Path, data_dir: str | None, extra: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WEFT_DATA_DIR", "DATABASE_URL")}
    env.update(PORT=str(free_port()), WEFT_HOST="127.0.0.1", **(extra or {}))
    if data_dir is not None:
        env["WEFT_DATA_DIR"] = data_dir
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", command],
        env=env,
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{env['PORT']}"


def serve_a_run(process: subprocess.Popen[str], url: str, command: str) -> str:
    try:
        output = wait_ready(url, process, READY[command])
        assert process.stdout is not None
        while command == "up" and "Press Ctrl+C" not in output:  # the rest of its banner
            line = process.stdout.readline()
            assert line, f"weft exited early:\n{output}"
            output += line
        run_a_workflow(url)
        return output + stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize(
    ("command", "data_dir"),
    [("up", None), ("serve", None), ("up", ""), ("serve", "")],
    ids=["up", "serve", "up-empty-data-dir", "serve-empty-data-dir"],
)
def test_starting_on_the_embedded_database_changes_no_folder_modes(
    home: Path, command: str, data_dir: str | None
) -> None:
    # Given a project under a private home, and WEFT_DATA_DIR unset or set but empty
    project = home / "project"
    before = modes(watched(project))
    assert before[home] == "0o700"

    # When weft starts there on the embedded database and runs a workflow
    process, url = start_weft(command, project, data_dir)
    output = serve_a_run(process, url, command)

    # Then no folder above its data or the binaries changed its mode
    assert modes(watched(project)) == before
    # And the database is in the default data folder, ./.weft/pgdata, not in the project
    pgdata = project / ".weft" / "pgdata"
    assert (pgdata / "PG_VERSION").is_file()
    assert not (project / "PG_VERSION").exists()
    assert sorted(p.name for p in project.iterdir()) == [".weft"]
    if os.geteuid() == 0:  # its user cannot enter the home: the cluster is elsewhere
        assert pgdata.is_symlink()
        assert pgdata.resolve().parent == cluster_home(pgdata)
        # and says so
        if command == "up":
            assert f"embedded PostgreSQL in {pgdata} (→ {pgdata.resolve()})" in output


@as_root
def test_as_root_binaries_its_user_cannot_reach_are_run_from_a_copy(home: Path) -> None:
    # Given pgserver installed under the private home (as pyenv or pip --user under /root)
    import pgserver

    package = Path(pgserver.__file__).parent
    site = home / "site"
    site.mkdir()
    for name in (package.name, "pgserver.libs"):
        if (package.parent / name).exists():
            subprocess.run(["cp", "-a", str(package.parent / name), str(site)], check=True)
    copies = BASE / "postgresql"
    existed = set(copies.iterdir()) if copies.is_dir() else set()
    project = home / "project"
    before = modes([*watched(project), site / "pgserver" / "pginstall" / "bin"])
    extra = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(home / "cache")}

    # When weft up starts there
    process, url = start_weft("up", project, None, extra)
    try:
        wait_ready(url, process, READY["up"])
        # Then PostgreSQL runs from weft's copy of the binaries, under BASE
        pgdata = (project / ".weft" / "pgdata").resolve()
        postgres = [
            p
            for p in psutil.process_iter(["cmdline", "exe"])
            if p.info["cmdline"] and str(pgdata) in p.info["cmdline"]
        ]
        assert postgres
        assert all(Path(p.info["exe"]).is_relative_to(copies) for p in postgres)
        run_a_workflow(url)
        stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for made in set(copies.iterdir()) - existed if copies.is_dir() else ():
            shutil.rmtree(made, ignore_errors=True)
    # And no folder changed its mode
    assert modes([*watched(project), site / "pgserver" / "pginstall" / "bin"]) == before


@as_root
def test_as_root_a_cluster_its_user_cannot_reach_is_refused_in_one_line(home: Path) -> None:
    # Given a cluster left in the project by hand, under the private home
    pgdata = home / "project" / ".weft" / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("16\n")

    # When weft up starts there
    process, _url = start_weft("up", home / "project", None)
    output, _ = process.communicate(timeout=60)

    # Then it stops with one line saying why and what to do, and nothing changed
    assert process.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("weft: as root, the embedded PostgreSQL runs as user pgserver")
    assert f"cannot reach {pgdata} ({home} is mode 700)" in last
    assert "set WEFT_DATA_DIR" in last
    assert oct(stat.S_IMODE(home.stat().st_mode)) == "0o700"
