"""weft's settings, read from the environment."""

from __future__ import annotations

import base64
import binascii
import socket
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_fernet_key(key: str) -> bool:
    """Fernet's own check of a key (32 bytes, url-safe base64), made without cryptography,
    so that a bad key stops the start in one line rather than failing the first secret."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32


class Settings(BaseSettings):
    """Every setting weft reads; each is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = Field(
        default=None, description="postgres:// or postgresql:// URL; unset → embedded pgserver."
    )
    port: int = Field(default=8000, ge=0, le=65535)
    weft_host: str | None = Field(default=None, description="Bind address; per-command default.")
    weft_data_dir: Path = Path(".weft")
    gcs_bucket: str | None = None
    cors_origins: str = ""
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    weft_api_token: str | None = None
    weft_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    weft_db_pool_size: int = Field(default=10, ge=1, le=200)
    weft_supervisor_idle_s: float = Field(default=60.0, gt=0)
    weft_shutdown_grace: float = Field(
        default=25.0, ge=0, description="Seconds in-flight nodes get to finish on SIGTERM."
    )
    weft_http_grace_s: float = Field(
        default=3.0, ge=0, description="After the drain, open connections get this long."
    )
    weft_instance: str | None = Field(
        default=None,
        description="This process's stable name (default: DYNO, else host:port); a restart "
        "of the same instance resumes its runs at once.",
    )
    dyno: str | None = Field(default=None, description="Set by Heroku: the dyno's name.")
    weft_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A run's lease; a crashed process's runs are resumed after it lapses.",
    )
    web_concurrency: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of `weft serve` on one port (Heroku's WEB_CONCURRENCY).",
    )
    weft_max_runs: int = Field(
        default=100,
        ge=0,
        description="Runs this process holds at most (executing or queued for a slot); "
        "beyond it runs wait in PostgreSQL for a process with room. 0: serve requests only.",
    )
    weft_event_retention_s: float = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="A finished run's live events are kept this long for replays (?after); "
        "after that a reconnect gets its snapshot and run.finished.",
    )
    weft_run_retention_s: float = Field(
        default=0,
        ge=0,
        description="Finished runs are deleted this long after they finished, with their "
        "node runs, items, logs, events and artifact records (not the artifacts' files). "
        "0: kept forever.",
    )
    weft_max_output_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Node outputs over this are stored as artifacts."
    )
    weft_max_items: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="A for_each node runs at most this many items; a longer list fails it.",
    )
    weft_http_deny_private: bool | None = Field(
        default=None,
        description="http.request and llm.simple refuse private and loopback addresses "
        "(link-local and cloud metadata always). Default: true for `weft serve`, false for "
        "`weft up`.",
    )
    weft_http_allow_hosts: str = Field(
        default="",
        description="Comma-separated host names or CIDRs outbound calls may reach even when "
        "private (WEFT_HTTP_DENY_PRIVATE).",
    )
    weft_secret_key: str | None = Field(
        default=None,
        description="The key secrets are encrypted with at rest (a Fernet key); `weft up` "
        "makes and keeps one under WEFT_DATA_DIR when unset.",
    )
    weft_blocks: str = Field(
        default="",
        description="Comma-separated modules of block plugins, imported at start (besides "
        "installed packages' `weft.blocks` entry points).",
    )
    weft_max_depth: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Runs started by workflow.run nest at most this deep (a workflow that "
        "runs itself stops there).",
    )
    weft_event_buffer: int = Field(
        default=256, ge=1, le=100_000, description="Events buffered per live subscriber."
    )
    weft_ws_ping_s: float = Field(
        default=20.0, gt=0, description="Websocket ping interval (Heroku's idle timeout is 55 s)."
    )
    weft_log_format: str | None = Field(default=None, description="json, console, or auto")
    weft_log_level: str = "info"

    @field_validator("weft_data_dir", mode="before")
    @classmethod
    def _empty_data_dir_is_default(cls, value: object) -> object:
        # Set but empty means the default: Path("") would be the current folder.
        empty = isinstance(value, str) and not value.strip()
        return cls.model_fields["weft_data_dir"].default if empty else value

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgres:// or postgresql://")
        return value

    @field_validator("weft_secret_key")
    @classmethod
    def _fernet_key(cls, value: str | None) -> str | None:
        if value and not is_fernet_key(value):
            raise ValueError(
                "not a Fernet key (32 bytes in url-safe base64; `weft up` makes one under "
                "WEFT_DATA_DIR)"
            )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def instance_name(self, port: int) -> str:
        """The name leases are held under: WEFT_INSTANCE, else DYNO, else host:port."""
        return self.weft_instance or self.dyno or f"{socket.gethostname()}:{port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.weft_data_dir.resolve() / "artifacts"

    @property
    def embedded_db_dir(self) -> Path:
        return self.weft_data_dir.resolve() / "pgdata"
