"""Assembly: from Settings to a running Runtime with its database, clients and stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4, uuid5

import httpx
import structlog

from blocks.context import BlockSettings
from blocks.outbound import OutboundPolicy, guarded_client
from blocks.plugins import PluginError, load_plugins
from blocks.registry import BlockRegistry
from blocks.standard import standard_registry
from runner.artifacts.artifacts import Artifacts
from runner.artifacts.blobs import BlobStore, LocalBlobStore
from runner.engine.services import RunLimits, RunServices
from runner.errors import PluginStartError
from runner.facade import Weft
from runner.live.bus import EventBus
from runner.metrics import Metrics
from runner.runtime.runtime import Runtime
from runner.secrets import Secrets
from runner.settings import Settings
from runner.store.db import Database, as_weft_errors
from runner.store.embedded import start_embedded
from runner.store.listener import Listener
from runner.store.migrate import apply_migrations
from runner.store.notifier import Notifier
from runner.store.postgres import PostgresStore
from runner.store.run_inserts import RunInserts
from runner.store.schedules import PostgresSchedules
from runner.store.writer import Writer

log = structlog.get_logger(__name__)

LEASE_NAMESPACE = UUID("6f0e6a8e-3c1a-4d0e-9d8e-77e1f3b0c2a4")


@dataclass
class System:
    """The process's parts, built once and passed where needed."""

    settings: Settings
    runtime: Runtime
    weft: Weft  # the web layer's one door into the runner
    database_url: str
    embedded_server: Any = None


async def database_url_for(settings: Settings) -> tuple[str, Any]:
    """DATABASE_URL, or the embedded server's URL (started on demand)."""
    if settings.database_url:
        return settings.database_url, None
    server, url = await start_embedded(settings.embedded_db_dir)
    return url, server


async def migrate(settings: Settings) -> list[str]:
    """Apply pending migrations to the configured database."""
    async with AsyncExitStack() as stack:
        url, _server = await database_url_for(settings)
        with as_weft_errors():
            db = await Database.connect(url, min_size=1, max_size=2)
            stack.push_async_callback(db.close)
            return await apply_migrations(db)


def make_blob_store(settings: Settings) -> BlobStore:
    if settings.gcs_bucket:
        from runner.artifacts.gcs import GcsBlobStore, gcs_client_from_env

        return GcsBlobStore(settings.gcs_bucket, gcs_client_from_env())
    return LocalBlobStore(settings.artifacts_dir)


def block_registry(settings: Settings) -> BlockRegistry:
    """The standard blocks, and the plugins' (WEFT_BLOCKS, `weft.blocks` entry points);
    PluginStartError names a plugin that failed."""
    registry = standard_registry()
    try:
        load_plugins(registry, settings.weft_blocks.split(","))
    except PluginError as exc:
        raise PluginStartError(str(exc)) from exc
    return registry


@asynccontextmanager
async def open_system(
    settings: Settings,
    *,
    registry: BlockRegistry | None = None,
    run_migrations: bool = True,
    instance: str | None = None,
) -> AsyncIterator[System]:
    """Connect, migrate and build the Runtime (not yet running: see `Runtime.run`).

    `instance` names this process for run leases (see Settings.instance_name); without one,
    leases are held under a name of this process alone.
    """
    async with AsyncExitStack() as stack:
        url, server = await database_url_for(settings)
        with as_weft_errors():
            db = await Database.connect(url, max_size=settings.weft_db_pool_size)
            stack.push_async_callback(db.close)
            if run_migrations:
                await apply_migrations(db)
        # This process's name in the wake-ups it sends, to know its own when they return.
        origin = uuid4().hex[:12]
        events = EventBus(subscriber_buffer=settings.weft_event_buffer)
        run_inserts = RunInserts(db)
        store = PostgresStore(db, origin=origin, inserts=run_inserts)
        notifier = Notifier(db, origin=origin)
        # Every outbound call (standard and users' blocks, each redirect hop) obeys the
        # policy. Unset, WEFT_HTTP_DENY_PRIVATE was left to a command (web/cli.py chooses for
        # `up` and `serve`); a System opened otherwise (tests) may reach private hosts.
        outbound = OutboundPolicy.from_settings(
            deny_private=settings.weft_http_deny_private is True,
            allow_hosts=settings.weft_http_allow_hosts,
        )
        http = await stack.enter_async_context(
            guarded_client(
                outbound,
                timeout=httpx.Timeout(30.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                follow_redirects=True,
            )
        )
        artifacts = Artifacts(make_blob_store(settings), PostgresStore(db.retrying()))
        secrets = Secrets(db, settings.weft_secret_key)
        # This process's own metrics registry (GET /metrics); pending runs are the database's.
        metrics = Metrics(count_pending=lambda: db.fetch_val("count_pending_runs"))
        services = RunServices(
            store=PostgresStore(db.retrying(), origin=origin),
            events=events,
            writer=Writer(db, publish=events.publish, notifier=notifier, metrics=metrics),
            http=http,
            artifacts=artifacts,
            block_settings=BlockSettings(
                openai_api_key=settings.openai_api_key,
                openai_base_url=settings.openai_base_url,
                openai_model=settings.openai_model,
            ),
            limits=RunLimits(
                max_output_bytes=settings.weft_max_output_bytes,
                max_items=settings.weft_max_items,
            ),
            secrets=secrets,
            metrics=metrics,
            # Leases are held in the name of this instance (a dyno, host:port): a restart
            # of the same instance takes back its runs at once instead of waiting for them.
            owner=uuid5(LEASE_NAMESPACE, instance) if instance else uuid4(),
        )
        runtime = Runtime(
            services,
            registry or block_registry(settings),
            supervisor_idle_s=settings.weft_supervisor_idle_s,
            lease_s=settings.weft_lease_s,
            max_runs=settings.weft_max_runs,
            event_retention_s=settings.weft_event_retention_s,
            run_retention_s=settings.weft_run_retention_s,
            max_depth=settings.weft_max_depth,
            store=store,
            listener=Listener(url, origin=origin, queries=db.queries),
            schedules=PostgresSchedules(db),
            notifier=notifier,
            run_inserts=run_inserts,
        )
        yield System(settings, runtime, Weft(runtime, store, artifacts, secrets), url, server)
