"""Serving: the Runtime and Hypercorn side by side in one top-level task group."""

from __future__ import annotations

import gc
import os
import signal
import socket
from collections.abc import Awaitable, Callable

import anyio
import structlog
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from runner.settings import Settings
from runner.system import System, open_system
from web.app import create_app

log = structlog.get_logger(__name__)

# Connections the kernel holds for accepting: a burst of new clients (a load test opening
# hundreds at once) beyond it has SYNs dropped and waits out a 1 s retransmit.
LISTEN_BACKLOG = 1024


def bind_socket(
    host: str, port: int, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (tests, benchmarks).

    `reuse_port`: several processes each bind their own socket to the port and the kernel
    spreads new connections across them (the workers of `weft serve --workers N`; a shared
    socket left one worker accepting nearly every connection). `listen=False` only holds
    the port (the main process, which serves nothing itself).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if listen:
        sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def hypercorn_config(
    sock: socket.socket, *, ws_ping_s: float | None = None, http_grace_s: float = 3.0
) -> Config:
    """Hypercorn settings serving on `sock` (a duplicate of it: Hypercorn closes what it uses)."""
    config = Config()
    # Pings keep idle websockets alive behind routers that cut idle connections (Heroku: 55 s).
    config.websocket_ping_interval = ws_ping_s
    config.websocket_max_message_size = 64 * 1024
    config.bind = [f"fd://{os.dup(sock.fileno())}"]
    config.backlog = LISTEN_BACKLOG  # Hypercorn listens again on the socket, with this
    config.accesslog = None
    config.errorlog = None
    # After the runtime's own drain (WEFT_SHUTDOWN_GRACE), open connections get this long.
    # (Hypercorn's ping task keeps a closed websocket's connection until its next ping.)
    config.graceful_timeout = http_grace_s
    config.keep_alive_timeout = 75.0  # longer than a router's idle timeout
    return config


async def serve_system(
    system: System,
    sock: socket.socket,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve `system` on `sock` until `shutdown_trigger` returns, then shut down gracefully:
    HTTP stays up (new runs get 503) while in-flight nodes finish, then it stops."""
    app = create_app(system.weft, system.settings)
    host, port = sock.getsockname()[:2]
    http_stop = anyio.Event()

    async def shut_down_after_trigger() -> None:
        await shutdown_trigger()
        log.info("shutting_down", grace_s=system.settings.weft_shutdown_grace)
        try:
            await system.weft.shutdown(system.settings.weft_shutdown_grace)
        finally:
            http_stop.set()

    async with anyio.create_task_group() as tg:
        await tg.start(system.weft.run)
        tg.start_soon(shut_down_after_trigger)
        if on_ready is not None:
            on_ready(f"http://{host}:{port}")
        config = hypercorn_config(
            sock,
            ws_ping_s=system.settings.weft_ws_ping_s,
            http_grace_s=system.settings.weft_http_grace_s,
        )
        await hypercorn_serve(app, config, shutdown_trigger=http_stop.wait)
        tg.cancel_scope.cancel()


async def serve(
    settings: Settings,
    host: str,
    port: int,
    on_ready: Callable[[System, str], None],
    *,
    reuse_port: bool = False,
) -> None:
    """Open the system and serve it on host:port until SIGTERM or SIGINT (`reuse_port`:
    as one of the workers of `weft serve --workers N`)."""
    sock = bind_socket(host, port, reuse_port=reuse_port)
    stop = anyio.Event()

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("shutdown_requested", signal=signal.Signals(signum).name)
                stop.set()
                break
        # Shutting down, which has its own deadlines: a second SIGTERM (Heroku signals every
        # process of a dyno, and a worker's main process passes it on) must not kill it.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    instance = settings.instance_name(sock.getsockname()[1])
    with sock:
        async with (
            open_system(settings, instance=instance) as weft,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(watch_signals)
            # What startup built lives as long as the process: keep it out of the garbage
            # collector's full passes, which otherwise grow with every module and route.
            gc.freeze()
            await serve_system(
                weft, sock, shutdown_trigger=stop.wait, on_ready=lambda url: on_ready(weft, url)
            )
            tg.cancel_scope.cancel()
