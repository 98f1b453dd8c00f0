"""The `weft` command: up (local, embedded defaults), serve (production), migrate, bench."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Heavy modules are imported by the commands, after the embedded database has been set
# starting in the background: the two overlap, and `weft up` is healthy sooner.
if TYPE_CHECKING:
    from runner.settings import Settings
    from runner.system import System


# uvloop: the same asyncio with a faster loop (~10% off a webhook's latency here).
EVENT_LOOP = {"use_uvloop": True}


def _settings() -> Settings:
    from pydantic import ValidationError

    from runner.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            print(f"weft: bad setting {where}: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def _deny_private_by_default(settings: Settings, deny: bool) -> Settings:
    """WEFT_HTTP_DENY_PRIVATE when unset: the command's default (serve: true, up: false)."""
    if settings.weft_http_deny_private is not None:
        return settings
    return settings.model_copy(update={"weft_http_deny_private": deny})


def _with_kept_secret_key(settings: Settings) -> Settings:
    """`weft up` without WEFT_SECRET_KEY: the key it made and keeps under WEFT_DATA_DIR
    (`weft serve` makes none: it refuses to store secrets without one)."""
    if settings.weft_secret_key:
        return settings
    from runner.secrets import KEY_FILE, kept_key
    from runner.settings import is_fernet_key

    try:
        key = kept_key(settings.weft_data_dir)
    except (OSError, UnicodeDecodeError):  # unreadable: told as a damaged key
        key = ""
    if not is_fernet_key(key):
        where = settings.weft_data_dir / KEY_FILE
        print(
            f"weft: {where} is not a Fernet key (restore it, or remove it to make a new one: "
            "the secrets stored with the old one can then not be read)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings.model_copy(update={"weft_secret_key": key})


def _check_plugins(settings: Settings) -> None:
    """Load the block plugins once before serving: a plugin that fails stops the start
    with one line (before any worker starts, not in each)."""
    from runner.errors import PluginStartError
    from runner.system import block_registry

    try:
        block_registry(settings)
    except PluginStartError as exc:
        print(f"weft: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _describe_database(weft: System) -> str:
    if weft.settings.database_url:
        return "DATABASE_URL"
    where = weft.settings.embedded_db_dir
    # As root it may be a link to a cluster under /var/lib/weft (runner/store/embedded_root).
    real = getattr(weft.embedded_server, "pgdata", where)
    return f"embedded PostgreSQL in {where}" + (f" (→ {real})" if real != where else "")


def cmd_up(args: argparse.Namespace) -> None:
    import anyio

    from runner.log_config import configure_logging
    from web.serve import serve

    settings = _with_kept_secret_key(_deny_private_by_default(_settings(), deny=False))
    _check_plugins(settings)
    configure_logging(settings.weft_log_format, settings.weft_log_level)
    host = args.host or settings.weft_host or "127.0.0.1"
    port = settings.port if args.port is None else args.port

    def ready(weft: System, url: str) -> None:
        artifacts = f"gs://{settings.gcs_bucket}" if settings.gcs_bucket else settings.artifacts_dir
        print(
            f"\n  weft is running at {url}\n"
            f"    API docs   {url}/docs\n"
            f"    database   {_describe_database(weft)}\n"
            f"    artifacts  {artifacts}\n"
            f"  Press Ctrl+C to stop.\n",
            flush=True,
        )

    anyio.run(serve, settings, host, port, ready, backend_options=EVENT_LOOP)


def cmd_serve(args: argparse.Namespace) -> None:
    import anyio
    import structlog

    from runner.log_config import configure_logging
    from web.serve import serve

    log = structlog.get_logger(__name__)

    settings = _deny_private_by_default(_settings(), deny=True)
    _check_plugins(settings)
    configure_logging(settings.weft_log_format or "json", settings.weft_log_level)
    host = args.host or settings.weft_host or "0.0.0.0"
    port = settings.port if args.port is None else args.port

    def ready(weft: System, url: str) -> None:
        log.info("listening", url=url, database=_describe_database(weft))

    workers = args.workers or settings.web_concurrency
    if not args.reuse_port and workers > 1:
        from web.workers import serve_workers

        raise SystemExit(serve_workers(settings, host, port, workers))
    serving = functools.partial(serve, reuse_port=args.reuse_port)
    anyio.run(serving, settings, host, port, ready, backend_options=EVENT_LOOP)


def cmd_migrate(args: argparse.Namespace) -> None:
    import anyio

    from runner.log_config import configure_logging
    from runner.system import migrate

    settings = _settings()
    configure_logging(settings.weft_log_format, settings.weft_log_level)
    applied = anyio.run(migrate, settings)
    print(
        f"weft: {len(applied)} migration(s) applied{': ' + ', '.join(applied) if applied else ''}"
    )


BENCH_MISSING = (
    "weft bench: the benchmark suite is a dev tool kept in bench/ of a weft checkout, not in "
    "the installed package: run `pip install -e '.[dev]'` in a checkout, then `weft bench` there"
)


def cmd_bench(argv: list[str]) -> None:
    # An editable install from a checkout has bench/ beside web/; a wheel has not.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "bench" / "__main__.py").is_file() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
    try:
        from bench.__main__ import main as bench_main
    except ImportError:  # no bench/, or the dev extra (websockets) is not installed
        print(BENCH_MISSING, file=sys.stderr)
        raise SystemExit(2) from None
    bench_main(argv)


def _run(func: Any, args: argparse.Namespace) -> None:
    from runner.errors import WeftError

    try:
        func(args)
    except (OSError, WeftError) as exc:  # the port is taken, the database unreachable, …
        print(f"weft: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `weft` console script."""
    parser = argparse.ArgumentParser(prog="weft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("up", cmd_up, "run locally on embedded defaults (127.0.0.1:8000)"),
        ("serve", cmd_serve, "run in production (0.0.0.0:$PORT, JSON logs)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--host", default=None, help="bind address (WEFT_HOST)")
        sub.add_argument("--port", type=int, default=None, help="port (PORT)")
        sub.set_defaults(func=func, workers=None, reuse_port=False)
        if name == "serve":
            sub.add_argument(
                "--workers",
                type=int,
                default=None,
                help="worker processes on the port (WEB_CONCURRENCY, default 1)",
            )
            # A worker of `serve --workers N`: one of the sockets that share the port.
            sub.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    sub = commands.add_parser("migrate", help="apply database migrations")
    sub.set_defaults(func=cmd_migrate)
    # `weft bench …` hands what follows to the suite (see cmd_bench); listed here for --help.
    commands.add_parser("bench", help="run the benchmark suite (in a checkout; bench --help)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        cmd_bench(argv[1:])
        return
    args = parser.parse_args(argv)
    if args.command in ("up", "serve", "migrate"):
        from runner.prestart import prestart_embedded_database

        prestart_embedded_database()
    # SIGINT is handled by the server itself; this only covers a Ctrl+C during startup.
    with contextlib.suppress(KeyboardInterrupt):
        _run(args.func, args)


if __name__ == "__main__":
    main()
