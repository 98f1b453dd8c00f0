"""Test helpers: a real weft server in-process, and small local HTTP servers."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import httpx
from cryptography.fernet import Fernet
from hypercorn.asyncio import serve as hypercorn_serve

from blocks.registry import BlockRegistry
from runner.settings import Settings
from runner.system import System, open_system
from web.serve import bind_socket, hypercorn_config, serve_system

RUN_TIMEOUT_S = 30.0


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, poll_s: float = 0.02
) -> None:
    """Return once `condition()` holds; fail after `timeout_s`.

    For states a test can only observe by asking (another process, an HTTP resource);
    where weft or a test peer signals the change, tests wait on that signal instead.
    """
    with anyio.fail_after(timeout_s):
        while not await condition():
            await anyio.sleep(poll_s)


class Hits:
    """Requests counted per path by a test's HTTP peer; `wait_for` wakes on each hit."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._changed = anyio.Event()

    def add(self, path: str) -> None:
        self.counts[path] += 1
        self._changed.set()
        self._changed = anyio.Event()

    def __getitem__(self, path: str) -> int:
        return self.counts[path]

    async def wait_for(self, condition: Callable[[Counter[str]], bool], timeout_s: float) -> None:
        """Return once `condition(counts)` holds, re-checked at every hit."""
        with anyio.fail_after(timeout_s):
            while not condition(self.counts):
                await self._changed.wait()


@dataclass
class WeftServer:
    """A running weft: its URL, an HTTP client on it, and its System."""

    url: str
    client: httpx.AsyncClient
    system: System

    async def create_workflow(self, graph: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/workflows", json={"name": fields.pop("name", "test"), "graph": graph, **fields}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def run(self, workflow_id: str, start_input: Any = None) -> dict[str, Any]:
        """Start a run over HTTP and wait for it to finish; returns GET /runs/{id}."""
        body = {} if start_input is None else {"start_input": start_input}
        response = await self.client.post(f"/workflows/{workflow_id}/run", json=body)
        assert response.status_code == 202, response.text
        return await self.wait(response.json()["id"])

    async def wait(self, run_id: str) -> dict[str, Any]:
        """Wait (bounded) until the run has finished; returns GET /runs/{id}."""
        with anyio.fail_after(RUN_TIMEOUT_S):
            await self.system.weft.wait_run_finished(UUID(run_id))
        response = await self.client.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        return run

    async def nodes(self, run_id: str) -> dict[str, dict[str, Any]]:
        response = await self.client.get(f"/runs/{run_id}/nodes")
        assert response.status_code == 200, response.text
        return {n["node_id"]: n for n in response.json()["items"]}


@asynccontextmanager
async def run_weft_server(
    database_url: str,
    data_dir: Path,
    *,
    registry: BlockRegistry | None = None,
    **settings: Any,
) -> AsyncIterator[WeftServer]:
    """Serve weft on an ephemeral 127.0.0.1 port, as `weft serve` does, until the block ends."""
    # The environment must not leak in: no real LLM, bucket or token unless a test asks.
    isolated: dict[str, Any] = {
        "openai_api_key": None,
        "gcs_bucket": None,
        "weft_api_token": None,
        # What `weft up` would make: secrets work unless a test takes the key away.
        "weft_secret_key": Fernet.generate_key().decode(),
        "cors_origins": "",
        # Tests stop their server at once; runs left unfinished are simply interrupted.
        "weft_shutdown_grace": 0.0,
        "weft_http_grace_s": 0.2,
    }
    config = Settings(database_url=database_url, weft_data_dir=data_dir, **{**isolated, **settings})
    stop = anyio.Event()
    ready: list[str] = []
    async with open_system(config, registry=registry, run_migrations=False) as system:
        with bind_socket("127.0.0.1", 0) as sock:
            async with anyio.create_task_group() as tg:
                started = anyio.Event()

                def on_ready(url: str) -> None:
                    ready.append(url)
                    started.set()

                tg.start_soon(_serve, system, sock, stop, on_ready)
                with anyio.fail_after(10):
                    await started.wait()
                async with httpx.AsyncClient(base_url=ready[0], timeout=30) as client:
                    yield WeftServer(ready[0], client, system)
                stop.set()


async def _serve(
    system: System, sock: Any, stop: anyio.Event, on_ready: Callable[[str], None]
) -> None:
    await serve_system(system, sock, shutdown_trigger=stop.wait, on_ready=on_ready)


Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@asynccontextmanager
async def serve_asgi(app: Asgi) -> AsyncIterator[str]:
    """Serve a small ASGI app on 127.0.0.1 (a test's HTTP peer); yields its base URL."""
    stop = anyio.Event()
    with bind_socket("127.0.0.1", 0) as sock:
        host, port = sock.getsockname()[:2]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_serve_asgi, app, sock, stop)
            url = f"http://{host}:{port}"
            yield url
            stop.set()


async def _serve_asgi(app: Asgi, sock: Any, stop: anyio.Event) -> None:
    await hypercorn_serve(app, hypercorn_config(sock), shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def json_response(
    send: Any, status: int, body: bytes, content_type: str = "application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
