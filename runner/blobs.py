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
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "weft-local"


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


def _check_path(path: str) -> PurePosixPath:
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
        target = self._root.joinpath(*_check_path(path).parts)
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


class GcsBlobStore:
    """Blobs as objects of one Google Cloud Storage bucket.

    google-cloud-storage is synchronous, so every call runs in a worker thread.
    """

    def __init__(self, bucket: str, client: storage.Client) -> None:
        self._bucket_name = bucket
        self._bucket = client.bucket(bucket)

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket_name

    async def write(self, path: str, data: bytes, content_type: str) -> str:
        """Upload `data` as object `path` with `content_type`; return its `gs://` URI."""
        name = str(_check_path(path))
        await anyio.to_thread.run_sync(self._upload_sync, name, data, content_type)
        return f"gs://{self._bucket_name}/{name}"

    async def read(self, uri: str) -> bytes:
        """The bytes of a `gs://` URI of this bucket."""
        prefix = f"gs://{self._bucket_name}/"
        name = uri.removeprefix(prefix)
        if not uri.startswith(prefix) or not name:
            raise ValueError(f"not a gs:// URI of bucket {self._bucket_name!r}: {uri!r}")
        try:
            data: bytes = await anyio.to_thread.run_sync(self._download_sync, name)
        except NotFound:
            raise BlobNotFoundError(uri) from None
        return data

    def _upload_sync(self, name: str, data: bytes, content_type: str) -> None:
        # upload_from_string picks the upload protocol from the size alone (read in
        # google/cloud/storage/blob.py, Blob._do_upload): up to 8 MiB (_MAX_MULTIPART_SIZE) a
        # multipart upload, above it a resumable one; it never sends a simple
        # (uploadType=media) upload, the one gcp-storage-emulator crashes on for
        # application/json. Both paths keep the content type on real GCS and the emulator.
        # Setting blob.chunk_size would only force the resumable path, so it is left unset.
        blob = self._bucket.blob(name)
        blob.upload_from_string(data, content_type=content_type)

    def _download_sync(self, name: str) -> bytes:
        data: bytes = self._bucket.blob(name).download_as_bytes()
        return data


def gcs_client_from_env() -> storage.Client:
    """A storage client for the emulator when STORAGE_EMULATOR_HOST is set, else for GCS.

    With the emulator the client is anonymous, in project "weft-local". The emulator's address
    may be given with or without its scheme ("127.0.0.1:9023" means "http://127.0.0.1:9023"):
    the client itself would use a scheme-less value as-is and fail on every request. The
    environment is left untouched; the normalised address is passed as the API endpoint.
    Without the variable the client uses application default credentials.
    """
    host = os.environ.get(EMULATOR_HOST_ENV, "").strip()
    if not host:
        return storage.Client()
    endpoint = host if "://" in host else f"http://{host}"
    return storage.Client(
        project=EMULATOR_PROJECT,
        # google-auth leaves AnonymousCredentials.__init__ unannotated.
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoint.rstrip("/")},
    )
