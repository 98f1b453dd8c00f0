"""Blobs in a Google Cloud Storage bucket (used when GCS_BUCKET is set).

Its own module so that google-cloud-storage, slow to import and heavy in memory, is only
loaded by a weft that uses it.
"""

from __future__ import annotations

import os

import anyio.to_thread
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from runner.artifacts.blobs import BlobNotFoundError, check_blob_path

EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_PROJECT = "weft-local"


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
        name = str(check_blob_path(path))
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
