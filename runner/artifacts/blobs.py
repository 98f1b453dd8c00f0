"""Where artifact bytes live: a local folder, or a Google Cloud Storage bucket.

A BlobStore only moves bytes; the artifacts table (its uri, size and content type) is kept by
the caller. URIs are `file:///abs/path` for LocalBlobStore and `gs://bucket/path` for
GcsBlobStore, and each store reads back only the URIs it could have written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

import anyio.to_thread


class BlobStore(Protocol):
    """Stores artifact bytes under a relative path and reads them back by URI."""

    async def write(self, path: str, data: bytes, content_type: str) -> str:
        """Store `data` at `path` (relative, `/`-separated); return the blob's URI."""
        ...

    async def read(self, uri: str) -> bytes:
        """The bytes of the blob at `uri`; BlobNotFoundError when there is none."""
        ...


class BlobNotFoundError(LookupError):
    """No blob exists at this URI."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"no blob exists at {uri}")
        self.uri = uri


def check_blob_path(path: str) -> PurePosixPath:
    """The path as relative parts; ValueError for anything that could leave the store's root."""
    # Callers (the gcs.write block) validate the same way; this is the last line of defence.
    if not path or path.startswith("/") or "\x00" in path or "\\" in path:
        raise ValueError(f"blob path must be relative and '/'-separated: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"blob path must not have empty, '.' or '..' segments: {path!r}")
    return PurePosixPath(*parts)


class LocalBlobStore:
    """Blobs as files under a root folder (used when GCS_BUCKET is unset).

    The content type is not stored: the artifacts table keeps it.
    """

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        """The resolved root folder."""
        return self._root

    async def write(self, path: str, data: bytes, content_type: str) -> str:
        """Write `data` to root/path atomically; return its `file://` URI."""
        target = self._root.joinpath(*check_blob_path(path).parts)
        return await anyio.to_thread.run_sync(self._write_sync, target, data)

    async def read(self, uri: str) -> bytes:
        """The bytes of a `file://` URI inside root."""
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ValueError(f"not a file:// URI of this store: {uri!r}")
        return await anyio.to_thread.run_sync(self._read_sync, uri, Path(unquote(parts.path)))

    def _inside_root(self, path: Path) -> bool:
        return path != self._root and path.is_relative_to(self._root)

    def _write_sync(self, target: Path, data: bytes) -> str:
        # Resolving follows symlinks that already exist, so one inside root that points
        # outside is refused before any folder is created through it.
        resolved = target.resolve()
        if not self._inside_root(resolved):
            raise ValueError(f"blob path escapes the store's root: {target}")
        resolved.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=resolved.parent, prefix=f".{resolved.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                # Without fsync a crash after os.replace can leave an empty file behind the URI
                # that the artifacts table already points to.
                os.fsync(tmp.fileno())
            os.replace(tmp_name, resolved)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return resolved.as_uri()

    def _read_sync(self, uri: str, path: Path) -> bytes:
        if not path.is_absolute():
            raise ValueError(f"not an absolute file:// URI: {uri!r}")
        resolved = path.resolve()
        if not self._inside_root(resolved):
            raise ValueError(f"URI is outside the store's root: {uri!r}")
        try:
            return resolved.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(uri) from None
