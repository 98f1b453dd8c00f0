"""Secrets: values encrypted at rest with WEFT_SECRET_KEY (cryptography's Fernet), read by
the runs that reference them (`{{ secrets.NAME }}`), and never written or shown in clear:
a Redactor replaces each value with *** wherever it would appear.

cryptography is imported when a secret is first encrypted or decrypted: it is ~6 MB of
every process's memory, which a weft that stores no secret need not pay (the key's shape
is checked with the settings).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import anyio
import orjson

from runner.errors import (
    InvalidRequestError,
    SecretExistsError,
    SecretKeyMissingError,
    SecretNotFoundError,
)
from runner.store.db import Database, Record

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_VALUE_CHARS = 64 * 1024
MASK = "***"
# How long a process trusts the values it read (another process may have changed them).
CACHE_S = 2.0
KEY_FILE = "secret.key"


def kept_key(data_dir: Path) -> str:
    """The key `weft up` keeps under its data folder: made (mode 600) on first use."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))  # Fernet.generate_key
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What the API shows of a secret: its name and times, never its value."""

    name: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Redactor:
    """Replaces known secret values with *** in text and in JSON-like values (inside their
    strings, and a number that is a secret's value), as they are and URL-encoded."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            if value:
                self._values.update({value, quote(value, safe=""), quote_plus(value)})
        # Longest first: a value inside another is not left half-masked.
        self._ordered = sorted(self._values, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with the secret values masked (its structure kept)."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return MASK if str(value) in self._values else value
        return value

    def json(self, encoded: str) -> str:
        """A JSON text with the values masked (decoded, masked, encoded again: replacing in
        the text itself could break its syntax, a secret `1234` inside a number)."""
        if not self._values:
            return encoded
        return orjson.dumps(self.value(orjson.loads(encoded))).decode()


class Secrets:
    """The secrets table, through a Fernet key; `values()` for runs, cached for CACHE_S."""

    def __init__(self, db: Database, key: str | None) -> None:
        self._db = db
        self._key = key or None
        self._box: Fernet | None = None
        self._cached: dict[str, str] | None = None
        self._read_at = -CACHE_S
        self._lock = anyio.Lock()

    def _fernet(self) -> Fernet:
        if self._key is None:
            raise SecretKeyMissingError()
        if self._box is None:
            from cryptography.fernet import Fernet

            self._box = Fernet(self._key.encode())
        return self._box

    @staticmethod
    def _check(name: str, value: str | None = None) -> None:
        if not NAME.match(name):
            raise InvalidRequestError(
                f"{name!r} is not a secret name (letters, digits and _, not first a digit)",
                "name",
            )
        if value is not None and (not value or len(value) > MAX_VALUE_CHARS or "\0" in value):
            raise InvalidRequestError(
                f"a secret's value is 1 to {MAX_VALUE_CHARS} characters, without NUL", "value"
            )

    async def create(self, name: str, value: str) -> SecretInfo:
        self._check(name, value)
        row = await self._db.fetch_one(
            "insert_secret", name, self._fernet().encrypt(value.encode())
        )
        if row is None:
            raise SecretExistsError(f"secret {name!r} exists: PUT /secrets/{name} changes it")
        self._cached = None
        return SecretInfo(row["name"], row["created_at"], row["updated_at"])

    async def update(self, name: str, value: str) -> SecretInfo:
        self._check(name, value)
        row = await self._db.fetch_one(
            "update_secret", name, self._fernet().encrypt(value.encode())
        )
        if row is None:
            raise SecretNotFoundError(f"no secret {name!r}")
        self._cached = None
        return SecretInfo(row["name"], row["created_at"], row["updated_at"])

    async def delete(self, name: str) -> None:
        if await self._db.fetch_one("delete_secret", name) is None:
            raise SecretNotFoundError(f"no secret {name!r}")
        self._cached = None

    async def list(self) -> list[SecretInfo]:
        rows = await self._db.fetch_all("list_secrets")
        return [SecretInfo(r["name"], r["created_at"], r["updated_at"]) for r in rows]

    async def names(self) -> set[str]:
        return {info.name for info in await self.list()}

    async def values(self) -> dict[str, str]:
        """Every secret's value, for the runs that reference them."""
        async with self._lock:
            if self._cached is None or anyio.current_time() - self._read_at > CACHE_S:
                rows = await self._db.fetch_all("secret_values")
                values = self._decrypted(rows) if rows else {}
                self._cached, self._read_at = values, anyio.current_time()
            return dict(self._cached)

    def _decrypted(self, rows: Iterable[Record]) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        fernet = self._fernet()
        values = {}
        for row in rows:
            try:
                values[row["name"]] = fernet.decrypt(bytes(row["value"])).decode()
            except InvalidToken:  # stored with another key: as if not there
                continue
        return values
