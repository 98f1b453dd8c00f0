"""The container files, checked without a container engine (none on these machines): the
compose file's services, ports and environment; the Dockerfile's base, install, user and
command; what the build context holds. Building and running the image is not tested here."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml  # PyYAML: there with the dev extra (schemathesis requires it)

from runner.settings import Settings
from runner.store.queries import load_queries

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def args_of(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile() if kw == keyword]


def env_of(keyword_args: list[str]) -> dict[str, str]:
    """ENV instructions in their KEY=VALUE form."""
    env: dict[str, str] = {}
    for args in keyword_args:
        env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def test_compose_runs_weft_on_postgres_16_for_local_development() -> None:
    spec = compose()
    services = spec["services"]
    assert isinstance(services, dict)
    assert set(services) == {"weft", "postgres"}
    postgres, weft = services["postgres"], services["weft"]

    # PostgreSQL 16, its data in a named volume, healthy once it accepts connections
    assert postgres["image"].split(":")[1].startswith("16")
    volume, _, mount = postgres["volumes"][0].partition(":")
    assert mount == "/var/lib/postgresql/data"
    assert volume in spec["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    # weft, built from this folder, on the postgres service with its credentials
    assert weft["build"] == "."
    url = urlsplit(weft["environment"]["DATABASE_URL"])
    credentials = postgres["environment"]
    assert url.scheme in ("postgres", "postgresql")
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == credentials["POSTGRES_USER"]
    assert url.password == credentials["POSTGRES_PASSWORD"]
    assert url.path == "/" + credentials["POSTGRES_DB"]
    assert Settings(database_url=weft["environment"]["DATABASE_URL"]).database_url
    assert weft["depends_on"]["postgres"]["condition"] == "service_healthy"

    # its PORT is the published container port and the image's EXPOSE
    port = weft["environment"]["PORT"]
    assert [mapping.rsplit(":", 1)[1] for mapping in weft["ports"]] == [port]
    assert args_of("EXPOSE") == [port]
    assert f"127.0.0.1:{port}/healthz" in " ".join(weft["healthcheck"]["test"])


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_weft_healthcheck_fails_on_an_error_status(
    health_server: ThreadingHTTPServer, status: int, healthy: bool
) -> None:
    # Given the compose healthcheck's command, pointed at a server answering `status`
    weft = compose()["services"]["weft"]  # type: ignore[index]
    command = list(weft["healthcheck"]["test"])
    assert command[:2] == ["CMD", "python"]
    port = weft["environment"]["PORT"]
    command[-1] = command[-1].replace(f":{port}/", f":{health_server.server_address[1]}/")
    _Health.status = status
    # When it runs (as the image runs it: python, no curl)
    done = subprocess.run([sys.executable, *command[2:]], capture_output=True, timeout=30)
    # Then it passes only on a success
    assert (done.returncode == 0) is healthy


def test_the_dockerfile_installs_weft_with_pip_and_serves_as_a_non_root_user() -> None:
    instructions = dockerfile()
    # A slim Python 3.11
    assert args_of("FROM") == ["python:3.11-slim"]
    # pip installs the package from the copied tree
    runs = args_of("RUN")
    assert any("pip install ." in run for run in runs)
    # CMD is exactly the Procfile's web command, in exec form
    procfile = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert [json.loads(cmd) for cmd in args_of("CMD")] == [shlex.split(procfile["web"])]
    # It runs as a user the image creates, not root
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER: the container would run as root"
    last_user_at, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert any(re.search(rf"\buseradd\b.* {user}\b", run) for run in runs)
    assert last_user_at < [kw for kw, _ in instructions].index("CMD")
    # Its settings: PORT as EXPOSEd, a data folder the user owns
    env = env_of(args_of("ENV"))
    assert args_of("EXPOSE") == [env["PORT"]]
    assert any(f"chown {user}:{user} {env['WEFT_DATA_DIR']}" in run for run in runs)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (or a folder above it) out; no `!` patterns."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(p, pattern.removeprefix("**/")) or fnmatch.fnmatch(p, pattern)
        for p in prefixes
        for pattern in patterns
    )


def test_the_build_context_holds_what_the_install_needs_and_no_local_data() -> None:
    patterns = [
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns)
    sources = [src for args in args_of("COPY") for src in args.split()[:-1]]
    # What pip needs to build the package, and the SQL it reads
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    needed = {"pyproject.toml", "setup.py", pyproject["project"]["readme"], "sql", *packages}
    assert needed <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is in .dockerignore"
    # A developer's local data and the repository stay out of the context
    for local in (".weft", ".weft/pgdata/base", "sub/.weft", ".git/config", ".venv"):
        assert _ignored(local, patterns), local


_LOAD = """
from runner.store.migrate import discover
from runner.store.queries import load_queries
import runner
print(runner.__file__, len(discover()), len(load_queries()))
"""


def run(*command: str, cwd: Path) -> None:
    """Run a build step; it must succeed."""
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr


def built_wheel(source: str, *, cwd: Path) -> Path:
    """A wheel of weft built from `source` (a folder or an sdist) as pip builds it."""
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "wheels", source, cwd=cwd)
    (wheel,) = (cwd / "wheels").glob("weft-*.whl")
    return wheel


def test_the_wheel_ships_the_sql_and_the_installed_package_reads_it(tmp_path: Path) -> None:
    # Given the build context the Dockerfile copies, built into a wheel as `pip install .`
    # builds it
    source = tmp_path / "source"
    for args in args_of("COPY"):
        *sources, target = args.split()
        for name in sources:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
            destination = source / (name if target.endswith("/") or target == "./" else target)
            destination.parent.mkdir(parents=True, exist_ok=True)
            copy(ROOT / name, destination)
    wheel = built_wheel("./source", cwd=tmp_path)
    # When it is installed (a wheel's files unpacked as they are into site-packages)
    site = tmp_path / "site"
    shutil.unpack_archive(wheel, site, format="zip")
    assert not (site / "sql").exists()
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then every migration and query is found inside the installed package
    assert loaded.returncode == 0, loaded.stderr
    where, migrations, queries = loaded.stdout.split()
    assert where.startswith(str(site))
    assert int(migrations) == len(list((ROOT / "sql" / "migrations").glob("*.sql")))
    assert int(queries) == len(load_queries())


def test_a_wheel_built_from_the_sdist_ships_the_sql_too(tmp_path: Path) -> None:
    # Given an sdist of the repository (what `python -m build` or an index serves)
    source = tmp_path / "source"
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("runner", "web", "blocks", "sql"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )

    run(sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist"), cwd=source)
    (sdist,) = (tmp_path / "dist").glob("weft-*.tar.gz")
    # When a wheel is built from it
    wheel = built_wheel(str(sdist), cwd=tmp_path)
    # Then the wheel holds every SQL file of the repository under runner/sql
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            n.removeprefix("runner/") for n in archive.namelist() if n.startswith("runner/sql/")
        }
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "sql").rglob("*.sql")}
    assert shipped == expected
